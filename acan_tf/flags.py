"""absl flags generated from `Config`'s fields, so each setting is declared once, and their conversion to a Config."""

from __future__ import annotations

import dataclasses

from absl import flags

from acan_tf.config import Config, ConfigError

_DEFINE = {
    "str": flags.DEFINE_string,
    "int": flags.DEFINE_integer,
    "float": flags.DEFINE_float,
    "bool": flags.DEFINE_boolean,
}


def define_flags(
    choices: dict[str, tuple[str, ...]] | None = None, flag_values: flags.FlagValues = flags.FLAGS
) -> None:
    """Defines one flag per Config field; `choices` adds enumerations known only to registries (dataset, backbone)."""
    choices = choices or {}
    defaults = Config()
    for field in dataclasses.fields(Config):
        default = getattr(defaults, field.name)
        help_text = field.metadata["help"]
        allowed = field.metadata["choices"] or choices.get(field.name)
        if allowed:
            flags.DEFINE_enum(field.name, default, list(allowed), help_text, flag_values=flag_values)
        elif field.type == "tuple[int, ...]":
            flags.DEFINE_list(field.name, [str(v) for v in default], help_text, flag_values=flag_values)
        else:
            _DEFINE[field.type](field.name, default, help_text, flag_values=flag_values)


def config_from_flags(flag_values: flags.FlagValues = flags.FLAGS) -> Config:
    """The validated Config of the parsed flags."""
    values = {}
    for field in dataclasses.fields(Config):
        value = flag_values[field.name].value
        if field.type == "tuple[int, ...]":
            try:
                value = tuple(int(v) for v in value)
            except ValueError as error:
                raise ConfigError(
                    f"--{field.name}={','.join(value)}: expected integers, e.g. 100,200"
                ) from error
        values[field.name] = value
    return Config(**values)
