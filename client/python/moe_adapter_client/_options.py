"""Conversion options (the CLI's flags as keyword arguments) -> StreamOptions."""
import json
import os

# The largest chunk that keeps every message within the 4 MiB that gRPC clients receive by
# default (a chunk message adds at most 6 bytes); the server's default chunk size too.
DEFAULT_CHUNK_BYTES = (4 << 20) - (64 << 10)

_INTS = ("num_experts", "hidden_size", "moe_intermediate_size", "ep_rank", "ep_size", "chunk_size")
_STRS = ("lora_layout", "dtype", "exclude_key_regex", "family")
_BOOLS = ("quantization", "partial_checkpoint")
_JSON = ("config", "adapter_config")
KNOWN = _INTS + _STRS + _BOOLS + _JSON


def _json_body(key, value):
    """A JSON body from a dict, a JSON string, or a path to a JSON file."""
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, os.PathLike) or (isinstance(value, str) and not value.lstrip().startswith("{")):
        with open(value, encoding="utf-8") as f:
            return f.read()
    if isinstance(value, str):
        return value
    raise TypeError(f"option {key}: expected a dict, a JSON string or a path, got {type(value).__name__}")


def to_wire(pb, options):
    """StreamOptions from keyword options; TypeError/ValueError for unknown or ill-typed ones."""
    unknown = sorted(set(options) - set(KNOWN))
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(KNOWN)}")
    w = pb.StreamOptions()
    for key, value in options.items():
        if value is None:
            continue
        if key in _INTS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"option {key}: expected an int, got {type(value).__name__}")
            if value < 0:
                raise ValueError(f"option {key}: must not be negative, got {value}")
        elif key in _STRS and not isinstance(value, str):
            raise TypeError(f"option {key}: expected a str, got {type(value).__name__}")
        elif key in _BOOLS and not isinstance(value, bool):
            raise TypeError(f"option {key}: expected a bool, got {type(value).__name__}")
        if key in ("num_experts", "hidden_size", "moe_intermediate_size"):
            setattr(w.geometry, key, value)
        elif key == "config":
            w.config_json = _json_body(key, value)
        elif key == "adapter_config":
            w.adapter_config_json = _json_body(key, value)
        else:
            setattr(w, key, value)
    chunk = w.chunk_size or DEFAULT_CHUNK_BYTES
    if chunk > DEFAULT_CHUNK_BYTES:
        raise ValueError(f"option chunk_size: at most {DEFAULT_CHUNK_BYTES} bytes (4 MiB - 64 KiB), so "
                         f"that every message fits gRPC's default 4 MiB limit; got {chunk}")
    w.chunk_size = chunk
    return w
