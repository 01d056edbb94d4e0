"""Reading a typed config (a frozen dataclass) back from a dict: an unknown key is an error naming it."""
import dataclasses

from .errors import ConfigError


def config_from_dict(cls, data: dict):
    names = {field.name for field in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys {sorted(unknown)}; known: {sorted(names)}")
    return cls(**data)
