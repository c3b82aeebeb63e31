"""Parameter validation with PVE's JSONSchema rules and error texts (proxmox-api.md §2.2, App. A/B).

`validate(schema, params)` returns the normalised parameters or raises `ParamError` carrying the
per-parameter ``errors`` dict of PVE's 400 response. For each parameter the checks run in PVE's
order: missing -> type -> format -> pattern -> maxLength/minLength -> minimum/maximum -> enum;
the first failure per parameter is reported and all failing parameters are collected.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

NOT_DEFINED = "property is not defined in schema and the schema does not allow additional properties"
MISSING = "property is missing and it is not optional"


class ParamError(Exception):
    """HTTP 400 ``Parameter verification failed.`` with PVE's ``errors`` object."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("Parameter verification failed.")
        self.errors = errors


@dataclass(frozen=True)
class P:
    """One parameter: a subset of PVE's JSONSchema keywords."""

    type: str = "string"  # string | integer | number | boolean
    optional: bool = True
    format: str | None = None  # a named format (FORMATS) or a property-string format (PROPSTRINGS)
    pattern: str | None = None
    max_length: int | None = None
    min_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] | None = None
    requires: str | None = None


def _int(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"-?\d+", value) is not None


def _num(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[+-]?(\d+|\d+\.\d*|\d*\.\d+)([eE][+-]?\d+)?", value) is not None


def _fmt_num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# --------------------------------------------------------------------------------------------
# named formats: return an error text (without "invalid format - ") or None

_DNS_LABEL = r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?"


def _f_vmid(v: str) -> str | None:
    return None if re.fullmatch(r"[1-9][0-9]{2,8}", v) else "value does not look like a valid VM ID"


def _f_node(v: str) -> str | None:
    return None if re.fullmatch(r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?", v) else "value does not look like a valid node name"


def _f_dns(v: str) -> str | None:
    return None if re.fullmatch(rf"({_DNS_LABEL}\.)*{_DNS_LABEL}", v) else "value does not look like a valid DNS name"


def _f_configid(v: str) -> str | None:
    return None if re.fullmatch(r"[a-z][a-z0-9_\-]+", v, re.I) else f"invalid configuration ID '{v}'"


def _f_configid_list(v: str) -> str | None:
    for item in re.split(r"[,;\s]+", v.strip()):
        if item and _f_configid(item):
            return f"invalid configuration ID '{item}'"
    return None


def _f_storage(v: str) -> str | None:
    return None if re.fullmatch(r"[a-z][a-z0-9\-_.]*[a-z0-9]", v, re.I) else f"storage ID '{v}' contains illegal characters"


def _f_tags(v: str) -> str | None:
    for tag in re.split(r"[;, ]+", v.strip()):
        if tag and not re.fullmatch(r"[a-z0-9_][a-z0-9_\-+.]*", tag, re.I):
            return f"invalid tag '{tag}'"
    return None


def _f_sid(v: str) -> str | None:
    return None if re.fullmatch(r"((vm|ct):)?[1-9][0-9]{2,8}", v) else "value does not look like a valid ha resource id"


def _f_poolid(v: str) -> str | None:
    return None if re.fullmatch(r"[A-Za-z0-9_\-]+", v) else f"pool ID '{v}' contains illegal characters"


def _f_cidr(v: str) -> str | None:
    return None if re.fullmatch(r"[0-9a-fA-F.:]+/\d{1,3}", v) else f"value does not look like a valid CIDR network"


def _f_boot(v: str) -> str | None:
    m = re.fullmatch(r"(order=)?([a-z]+\d*(;[a-z]+\d*)*)", v)
    if m or re.fullmatch(r"legacy=[acdn]{1,4}|[acdn]{1,4}", v):
        return None
    return "format error\nboot.order: value does not match the regex pattern"


def _f_startup(v: str) -> str | None:
    for part in v.split(","):
        if not re.fullmatch(r"(order=)?\d+|up=\d+|down=\d+", part):
            return "unable to parse startup options"
    return None


def _f_ha_nodes(v: str) -> str | None:
    for part in v.split(","):
        if not re.fullmatch(r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?(:\d+)?", part.strip()):
            return f"unable to parse node list '{v}'"
    return None


def _f_any(_v: str) -> str | None:
    return None


FORMATS: dict[str, Callable[[str], str | None]] = {
    "pve-vmid": _f_vmid,
    "pve-node": _f_node,
    "dns-name": _f_dns,
    "pve-configid": _f_configid,
    "pve-configid-list": _f_configid_list,
    "pve-storage-id": _f_storage,
    "pve-tag-list": _f_tags,
    "pve-ha-resource-or-vm-id": _f_sid,
    "pve-poolid": _f_poolid,
    "CIDR": _f_cidr,
    "pve-qm-boot": _f_boot,
    "pve-startup-order": _f_startup,
    "pve-ha-node-list": _f_ha_nodes,
    "pve-vm-cpu-conf": _f_any,
    "storage-pair-list": _f_any,
    "pve-priv-list": _f_any,
    "pve-realm": _f_any,
    "pve-task-status-type-list": _f_any,
}


# --------------------------------------------------------------------------------------------
# property strings (Appendix B)

NET_MODELS = (
    "e1000", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e", "i82551", "i82557b",
    "i82559er", "ne2k_isa", "ne2k_pci", "pcnet", "rtl8139", "virtio", "vmxnet3",
)  # fmt: skip

_BOOL_WORDS = {"1": 1, "on": 1, "yes": 1, "true": 1, "0": 0, "off": 0, "no": 0, "false": 0}


@dataclass(frozen=True)
class PropertyFormat:
    keys: dict[str, P]
    default_key: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)


_DRIVE_KEYS = {
    "file": P(optional=False),
    "media": P(enum=("disk", "cdrom")),
    "cache": P(enum=("none", "writethrough", "writeback", "unsafe", "directsync")),
    "discard": P(enum=("ignore", "on")),
    "format": P(enum=("raw", "qcow", "qed", "qcow2", "vmdk", "cloop")),
    "aio": P(enum=("native", "threads", "io_uring")),
    "iothread": P(type="boolean"),
    "ssd": P(type="boolean"),
    "backup": P(type="boolean"),
    "replicate": P(type="boolean"),
    "ro": P(type="boolean"),
    "shared": P(type="boolean"),
    "snapshot": P(type="boolean"),
    "detect_zeroes": P(type="boolean"),
    "size": P(pattern=r"\d+(\.\d+)?[KMGT]?"),
    "serial": P(max_length=60),
    "wwn": P(pattern=r"(?:0x)?[0-9a-fA-F]{16}"),
    "import-from": P(),
    "werror": P(enum=("enospc", "ignore", "report", "stop")),
    "rerror": P(enum=("ignore", "report", "stop")),
    **{k: P(type="number", minimum=0) for k in ("mbps", "mbps_rd", "mbps_wr", "mbps_max", "mbps_rd_max", "mbps_wr_max")},
    **{k: P(type="integer", minimum=0) for k in ("iops", "iops_rd", "iops_wr", "iops_max", "iops_rd_max", "iops_wr_max", "bps", "bps_rd", "bps_wr")},
}

PROPSTRINGS: dict[str, PropertyFormat] = {
    "drive": PropertyFormat(_DRIVE_KEYS, default_key="file", aliases={"volume": "file"}),
    "net": PropertyFormat(
        {
            "model": P(optional=False, enum=NET_MODELS),
            "macaddr": P(pattern=r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}"),
            "bridge": P(pattern=r"[-_.\w\d]+"),
            "firewall": P(type="boolean"),
            "link_down": P(type="boolean"),
            "mtu": P(type="integer", minimum=1, maximum=65520),
            "queues": P(type="integer", minimum=0, maximum=64),
            "rate": P(type="number", minimum=0),
            "tag": P(type="integer", minimum=1, maximum=4094),
            "trunks": P(pattern=r"\d+(?:-\d+)?(?:;\d+(?:-\d+)?)*"),
        },
        default_key="model",
    ),
    "memory": PropertyFormat({"current": P(type="integer", minimum=16, optional=False)}, default_key="current"),
    "agent": PropertyFormat(
        {
            "enabled": P(type="boolean", optional=False),
            "fstrim_cloned_disks": P(type="boolean"),
            "freeze-fs-on-backup": P(type="boolean"),
            "type": P(enum=("virtio", "isa")),
        },
        default_key="enabled",
    ),
    "machine": PropertyFormat(
        {"type": P(max_length=40), "viommu": P(enum=("intel", "virtio")), "enable-s3": P(type="boolean"), "enable-s4": P(type="boolean")},
        default_key="type",
    ),
    "efidisk": PropertyFormat(
        {"file": P(optional=False), "efitype": P(enum=("2m", "4m")), "pre-enrolled-keys": P(type="boolean"), "size": P(), "format": P()},
        default_key="file",
        aliases={"volume": "file"},
    ),
}


class _PropError(Exception):
    pass


def parse_property_string(fmt: PropertyFormat, value: str, param: str) -> dict[str, str]:
    """Parse ``key=value,...``; raise _PropError with the text after ``invalid format - ``."""
    result: dict[str, str] = {}
    for part in value.split(","):
        if part == "":
            continue
        if "=" in part:
            key, val = part.split("=", 1)
            key = fmt.aliases.get(key, key)
            if fmt is PROPSTRINGS["net"] and key in NET_MODELS:  # "virtio=BC:24:..." shorthand
                if "model" in result:
                    raise _PropError("duplicate key in comma-separated list property: model")
                result["model"] = key
                key = "macaddr"
        elif fmt.default_key is not None and fmt.default_key not in result:
            key, val = fmt.default_key, part
        else:
            raise _PropError("value without key, but schema does not define a default key")
        if key not in fmt.keys:
            raise _PropError(f"invalid key in comma-separated list property: {key}")
        if key in result:
            raise _PropError(f"duplicate key in comma-separated list property: {key}")
        result[key] = val
    lines = []
    for key, spec in fmt.keys.items():
        err = _check_value(spec, result.get(key), in_propstring=True)
        if err:
            lines.append(f"{param}.{key}: {err}")
    if lines:
        raise _PropError("format error\n" + "\n".join(lines))
    return result


def _check_value(spec: P, value: Any, *, in_propstring: bool = False) -> str | None:
    """The first failing check's text, or None."""
    if value is None:
        return None if spec.optional else MISSING
    if isinstance(value, list):
        return f"type check ('{spec.type}') failed - got ARRAY"
    if spec.type == "integer" and not _int(value):
        return f"type check ('integer') failed - got '{value}'"
    if spec.type == "number" and not _num(value):
        return f"type check ('number') failed - got '{value}'"
    if spec.type == "boolean":
        ok = value.lower() in _BOOL_WORDS if in_propstring else value in ("0", "1")
        if not ok:
            return f"type check ('boolean') failed - got '{value}'"
    if spec.format is not None:
        if spec.format in FORMATS:
            err = FORMATS[spec.format](value)
            if err:
                return f"invalid format - {err}\n"
        elif spec.format in PROPSTRINGS:
            try:
                parse_property_string(PROPSTRINGS[spec.format], value, _current_param.get())
            except _PropError as exc:
                return f"invalid format - {exc}\n"
    if spec.pattern is not None and not re.fullmatch(spec.pattern, value):
        return "value does not match the regex pattern"
    if spec.max_length is not None and len(value) > spec.max_length:
        return f"value may only be {spec.max_length} characters long"
    if spec.min_length is not None and len(value) < spec.min_length:
        return f"value must be at least {spec.min_length} characters long"
    if spec.type in ("integer", "number"):
        num = float(value)
        if spec.minimum is not None and num < spec.minimum:
            return f"value must have a minimum value of {_fmt_num(spec.minimum)}"
        if spec.maximum is not None and num > spec.maximum:
            return f"value must have a maximum value of {_fmt_num(spec.maximum)}"
    if spec.enum is not None and value not in spec.enum:
        return f"value '{value}' does not have a value in the enumeration '{', '.join(spec.enum)}'"
    return None


class _ParamName:
    """The parameter currently validated (property-string errors are prefixed with it)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self) -> str:
        return getattr(self._local, "name", "")

    def set(self, name: str) -> None:
        self._local.name = name


_current_param = _ParamName()


def lookup(schema: dict[str, P], name: str) -> P | None:
    """Exact key, or an indexed family (``scsi[n]``) entry with the index in range."""
    if name in schema:
        return schema[name]
    m = re.fullmatch(r"([a-z]+)(\d+)", name)
    if m:
        family = schema.get(f"{m.group(1)}[n]")
        if family is not None and int(m.group(2)) <= FAMILY_MAX.get(m.group(1), -1) and not (len(m.group(2)) > 1 and m.group(2).startswith("0")):
            return family
    return None


FAMILY_MAX = {
    "scsi": 30, "virtio": 15, "sata": 5, "ide": 3, "net": 31, "unused": 255, "ipconfig": 31,
    "serial": 3, "parallel": 2, "usb": 4, "hostpci": 15, "numa": 7, "virtiofs": 9,
}  # fmt: skip


def validate(schema: dict[str, P], params: dict[str, Any]) -> dict[str, Any]:
    """Check `params` (strings, lists for repeated keys) against `schema`; raise ParamError."""
    errors: dict[str, str] = {}
    for name, value in params.items():
        spec = lookup(schema, name)
        if spec is None:
            errors[name] = NOT_DEFINED
            continue
        _current_param.set(name)
        err = _check_value(spec, value)
        if err:
            errors[name] = err
    for name, spec in schema.items():
        if name.endswith("[n]"):
            continue
        if not spec.optional and name not in params and name not in errors:
            errors[name] = MISSING
        if spec.requires and name in params and spec.requires not in params:
            errors.setdefault(spec.requires, f"missing property required by '{name}'")
    if errors:
        raise ParamError(errors)
    return params


def to_bool(value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    return _BOOL_WORDS.get(str(value).lower(), 0) == 1


# --------------------------------------------------------------------------------------------
# shared parameter sets

NODE = P(format="pve-node", optional=False)
VMID = P(type="integer", format="pve-vmid", minimum=100, maximum=999999999, optional=False)
SNAPNAME = P(format="pve-configid", max_length=40, optional=False)

VM_CONFIG_KEYS: dict[str, P] = {
    "name": P(format="dns-name"),
    "description": P(max_length=8192),
    "cores": P(type="integer", minimum=1),
    "sockets": P(type="integer", minimum=1),
    "vcpus": P(type="integer", minimum=1),
    "memory": P(format="memory"),
    "balloon": P(type="integer", minimum=0),
    "shares": P(type="integer", minimum=0, maximum=50000),
    "cpu": P(format="pve-vm-cpu-conf"),
    "cpulimit": P(type="number", minimum=0, maximum=128),
    "cpuunits": P(type="integer", minimum=1, maximum=262144),
    "numa": P(type="boolean"),
    "scsihw": P(enum=("lsi", "lsi53c810", "virtio-scsi-pci", "virtio-scsi-single", "megasas", "pvscsi")),
    "scsi[n]": P(format="drive"),
    "virtio[n]": P(format="drive"),
    "sata[n]": P(format="drive"),
    "ide[n]": P(format="drive"),
    "unused[n]": P(),
    "efidisk0": P(format="efidisk"),
    "net[n]": P(format="net"),
    "ipconfig[n]": P(),
    "serial[n]": P(),
    "parallel[n]": P(),
    "usb[n]": P(),
    "hostpci[n]": P(),
    "numa[n]": P(),
    "virtiofs[n]": P(),
    "ostype": P(enum=("other", "wxp", "w2k", "w2k3", "w2k8", "wvista", "win7", "win8", "win10", "win11", "l24", "l26", "solaris")),
    "bios": P(enum=("seabios", "ovmf")),
    "machine": P(format="machine"),
    "boot": P(format="pve-qm-boot"),
    "bootdisk": P(),
    "agent": P(format="agent"),
    "onboot": P(type="boolean"),
    "startup": P(format="pve-startup-order"),
    "tags": P(format="pve-tag-list"),
    "protection": P(type="boolean"),
    "template": P(type="boolean"),
    "kvm": P(type="boolean"),
    "acpi": P(type="boolean"),
    "tablet": P(type="boolean"),
    "localtime": P(type="boolean"),
    "hotplug": P(),
    "vga": P(),
    "smbios1": P(max_length=512),
    "vmgenid": P(),
    "cdrom": P(format="drive"),
    "ciuser": P(),
    "cipassword": P(),
    "citype": P(enum=("configdrive2", "nocloud", "opennebula")),
    "sshkeys": P(),
    "nameserver": P(),
    "searchdomain": P(),
    "hookscript": P(),
    "watchdog": P(),
    "rng0": P(),
    "audio0": P(),
    "keyboard": P(),
    "args": P(),
    "affinity": P(),
    "migrate_downtime": P(type="number", minimum=0),
    "migrate_speed": P(type="integer", minimum=0),
    "lock": P(enum=("backup", "clone", "create", "migrate", "rollback", "snapshot", "snapshot-delete", "suspending", "suspended")),
    "arch": P(enum=("x86_64", "aarch64")),
    "hugepages": P(enum=("any", "2", "1024")),
    "vmstatestorage": P(format="pve-storage-id"),
    "startdate": P(),
    "spice_enhancements": P(),
    "tdf": P(type="boolean"),
    "freeze": P(type="boolean"),
    "reboot": P(type="boolean"),
    "keephugepages": P(type="boolean"),
    "ivshmem": P(),
    "tpmstate0": P(),
    "amd-sev": P(),
    "import-working-storage": P(format="pve-storage-id"),
    "cicustom": P(),
    "ciupgrade": P(type="boolean"),
}

# value types PVE emits in GET config for these keys (others are strings)
INT_KEYS = {"cores", "sockets", "vcpus", "balloon", "shares", "cpuunits", "migrate_speed"}
NUM_KEYS = {"cpulimit", "migrate_downtime"}
BOOL_KEYS = {k for k, v in VM_CONFIG_KEYS.items() if v.type == "boolean"}

CREATE_SCHEMA: dict[str, P] = {
    "node": NODE,
    "vmid": VMID,
    **VM_CONFIG_KEYS,
    "start": P(type="boolean"),
    "pool": P(format="pve-poolid"),
    "storage": P(format="pve-storage-id"),
    "archive": P(max_length=255),
    "force": P(type="boolean", requires="archive"),
    "unique": P(type="boolean", requires="archive"),
    "bwlimit": P(type="integer", minimum=0),
    "live-restore": P(type="boolean"),
}

_CONFIG_SET_EXTRA = {
    "node": NODE,
    "vmid": VMID,
    "digest": P(max_length=40),
    "delete": P(format="pve-configid-list"),
    "revert": P(format="pve-configid-list"),
    "force": P(type="boolean", requires="delete"),
    "skiplock": P(type="boolean"),
}
CONFIG_PUT_SCHEMA: dict[str, P] = {**VM_CONFIG_KEYS, **_CONFIG_SET_EXTRA}
CONFIG_POST_SCHEMA: dict[str, P] = {**CONFIG_PUT_SCHEMA, "background_delay": P(type="integer", minimum=1, maximum=30)}
