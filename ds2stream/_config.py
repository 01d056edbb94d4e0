"""Reading a typed config (a frozen dataclass) back from a dict, or changing some of its fields: an
unknown key or an unknown choice is an error naming it."""
import dataclasses
import enum

from .errors import ConfigError


def _check_keys(cls, data: dict) -> None:
    names = {field.name for field in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys {sorted(unknown)}; known: {sorted(names)}")


def config_from_dict(cls, data: dict):
    _check_keys(cls, data)
    return cls(**data)


def replace_config(config, changes: dict):
    """``dataclasses.replace`` that names an unknown field in a ConfigError (not a TypeError)."""
    _check_keys(type(config), changes)
    return dataclasses.replace(config, **changes)


def enum_choice(kind: type[enum.Enum], value, field: str):
    """``value`` (a member or its string, as config.json holds it) as a member of ``kind``; a
    ConfigError naming ``field`` and the choices otherwise."""
    try:
        return kind(value)
    except ValueError:
        choices = [repr(member.value) for member in kind]
        raise ConfigError(f"{field} must be {', '.join(choices[:-1])} or {choices[-1]}, got {value!r}") from None
