"""--strategy=multi_worker: two worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy from TF_CONFIG) end a
tiny run with identical weights, equal to a single-process run that splits the same global batches over two replicas.

The single-process reference is MirroredStrategy over two logical CPUs: the same two replicas, each mining
triplets and normalising batches on its own half of every step (tests/test_distribution.py shows that split
equals one device when the model has no batch normalisation). The two runs differ only in how the replicas
communicate, so their weights must agree to float32 rounding.
"""

import json
import re
import socket
import subprocess
import sys
import textwrap

import numpy as np

from acan_tf.model.builder import build_acan
from tests.tiny_runs import REPO, h5_arrays, make_tree, subprocess_env, tiny_config, train_command

TOLERANCE = 1e-5
REFERENCE = textwrap.dedent(
    """
    import json, sys
    import acan_tf
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from acan_tf.config import Config
    from acan_tf.train import run
    run(Config.from_json(json.loads(sys.argv[1])))
    """
)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_match_each_other_and_a_single_process_run(tmp_path):
    tree = make_tree(str(tmp_path / "tree"))
    hosts = [f"127.0.0.1:{port}" for port in free_ports(2)]
    shared, single = tmp_path / "multi", tmp_path / "single"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    command = train_command(tiny_config(tree, str(shared), strategy="multi_worker", deterministic=True))
    workers = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})
        env = subprocess_env(TF_CONFIG=tf_config, TMPDIR=str(scratch))
        workers.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    config = tiny_config(tree, str(single), strategy="mirrored", deterministic=True)
    try:
        reference = subprocess.run([sys.executable, "-c", REFERENCE, json.dumps(config.to_json())], cwd=REPO,
                                   env=subprocess_env(), capture_output=True, text=True, timeout=300)
        outputs = [worker.communicate(timeout=300) for worker in workers]
    finally:
        for worker in workers:  # a worker left waiting for its peer must not outlive the test
            worker.kill()
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    assert reference.returncode == 0, reference.stderr[-3000:]

    digests = [re.search(r"final weights sha256: (\w+)", out).group(1) for out, _ in outputs]
    assert digests[0] == digests[1], "both workers must end with bit-identical weights"
    assert "Re-ID (Market-1501 protocol)" in outputs[0][0] and "Re-ID" not in outputs[1][0], "only the chief evaluates"
    assert json.loads((shared / "report.json").read_text())["weights_sha256"] == digests[0]
    assert not list(scratch.glob("acan_tf_worker_*")), "the non-chief worker's scratch folder is removed"

    multi = h5_arrays(str(shared / "checkpoints" / "last.weights.h5"))
    reference_weights = h5_arrays(str(single / "checkpoints" / "last.weights.h5"))
    assert sorted(multi) == sorted(reference_weights)
    worst = max(float(np.max(np.abs(multi[name] - reference_weights[name]))) for name in multi)
    assert worst < TOLERANCE, f"2 workers vs 1 process with 2 replicas: weights differ by {worst}"
    initial = tmp_path / "initial.weights.h5"
    build_acan(config, num_cameras=3, steps_per_epoch=config.steps_per_epoch).save_weights(str(initial))
    moved = max(float(np.max(np.abs(a - multi[name]))) for name, a in h5_arrays(str(initial)).items())
    assert moved > 1e-3, "training must change the weights for the comparison to mean anything"
