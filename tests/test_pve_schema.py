"""The emulator's parameter validation (PVE JSONSchema texts) and backend loading, without a server."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hatui.lab.pve import schema as S
from hatui.lab.pve.backend import FaultInjectingBackend, MemoryBackend, VmBackend, load_backend
from hatui.lab.pve.cluster import _parse_net


def errors(schema, params):
    with pytest.raises(S.ParamError) as info:
        S.validate(schema, params)
    return info.value.errors


def test_validation_order_and_texts():
    assert errors(S.CREATE_SCHEMA, {"node": "pve1", "vmid": "99"}) == {"vmid": "invalid format - value does not look like a valid VM ID\n"}
    assert errors(S.CREATE_SCHEMA, {"node": "pve1", "vmid": "1x"}) == {"vmid": "type check ('integer') failed - got '1x'"}
    assert errors(S.CREATE_SCHEMA, {"node": "pve1", "vmid": ["101", "102"]}) == {"vmid": "type check ('integer') failed - got ARRAY"}
    assert errors(S.CREATE_SCHEMA, {"node": "pve1", "vmid": "101", "cores": "0"}) == {"cores": "value must have a minimum value of 1"}
    assert errors(S.CREATE_SCHEMA, {"node": "pve1", "vmid": "101", "force": "1"}) == {"archive": "missing property required by 'force'"}
    assert errors(S.CREATE_SCHEMA, {"node": "pve1", "vmid": "101", "description": "x" * 8193}) == {"description": "value may only be 8192 characters long"}
    assert errors(S.CREATE_SCHEMA, {"node": "pve1", "vmid": "101", "scsi0": "local-lvm:1,cache=fast"}) == {
        "scsi0": "invalid format - format error\nscsi0.cache: value 'fast' does not have a value in the enumeration 'none, writethrough, writeback, unsafe, directsync'\n"
    }
    assert errors(S.CREATE_SCHEMA, {"node": "pve1", "vmid": "101", "net0": "virtio,color=red"}) == {
        "net0": "invalid format - invalid key in comma-separated list property: color\n"
    }
    assert errors(S.CREATE_SCHEMA, {"node": "pve1", "vmid": "101", "net0": "virtio,tag=5000"}) == {
        "net0": "invalid format - format error\nnet0.tag: value must have a maximum value of 4094\n"
    }
    assert errors(S.CREATE_SCHEMA, {"node": "pve1", "vmid": "101", "memory": "8"}) == {
        "memory": "invalid format - format error\nmemory.current: value must have a minimum value of 16\n"
    }
    assert errors({"snapname": S.SNAPNAME}, {"snapname": "1abc"}) == {"snapname": "invalid format - invalid configuration ID '1abc'\n"}
    assert errors({"snapname": S.SNAPNAME}, {"snapname": "a" * 41}) == {"snapname": "value may only be 40 characters long"}


@pytest.mark.parametrize("value", ["1", "0"])
def test_booleans_accept_only_0_and_1(value):
    assert S.validate({"b": S.P(type="boolean")}, {"b": value}) == {"b": value}


@given(st.text(max_size=6).filter(lambda v: v not in ("0", "1")))
def test_booleans_reject_everything_else(value):
    assert errors({"b": S.P(type="boolean")}, {"b": value}) == {"b": f"type check ('boolean') failed - got '{value}'"}


def test_indexed_families():
    assert S.lookup(S.CREATE_SCHEMA, "scsi30") is not None
    assert S.lookup(S.CREATE_SCHEMA, "scsi31") is None
    assert S.lookup(S.CREATE_SCHEMA, "virtio16") is None
    assert S.lookup(S.CREATE_SCHEMA, "net031") is None


@given(
    model=st.sampled_from(S.NET_MODELS),
    mac=st.lists(st.integers(0, 255), min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02X}" for x in b)),
    bridge=st.from_regex(r"vmbr[0-9]{1,3}", fullmatch=True),
    tag=st.one_of(st.none(), st.integers(1, 4094)),
)
def test_net_property_strings_parse(model, mac, bridge, tag):
    value = f"{model}={mac},bridge={bridge}" + (f",tag={tag}" if tag else "")
    parsed = S.parse_property_string(S.PROPSTRINGS["net"], value, "net0")
    assert parsed["model"] == model and parsed["macaddr"] == mac and parsed["bridge"] == bridge
    loose = _parse_net(value)
    assert (loose["model"], loose["macaddr"], loose["bridge"]) == (model, mac, bridge)


def test_backend_loading(tmp_path):
    assert isinstance(load_backend(None, tmp_path, {}), MemoryBackend)
    backend = load_backend("hatui.lab.pve.backend:FaultInjectingBackend", tmp_path, {})
    assert isinstance(backend, FaultInjectingBackend) and isinstance(backend, VmBackend)
    with pytest.raises(ValueError, match="module:Class"):
        load_backend("nocolon", tmp_path, {})
    with pytest.raises(ValueError, match="has no attribute"):
        load_backend("hatui.lab.pve.backend:Nope", tmp_path, {})
    with pytest.raises(ValueError, match="missing hook"):
        load_backend("types:SimpleNamespace", tmp_path, {})
