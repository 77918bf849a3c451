"""hookhost policy for RDMA devices (InfiniBand / RoCE), written in Python.

It is the proof that a vendor can write a policy in a language other than
Rust: componentize-py turns this file into a WebAssembly component of the
same `hookhost:policy` world (see plugins/README.md, "Plugins in Python").

RDMA_DEVICES selects devices by their verbs name, as `ibv_devices` prints
it: `all`, or a comma list such as `mlx5_0,mlx5_1`. The container gets the
selected devices' `/dev/infiniband/uverbsN` nodes and the connection manager
`/dev/infiniband/rdma_cm`. The host maps names to nodes through sysfs:
`/sys/class/infiniband_verbs/uverbsN/ibdev` holds the device name.

The setting `candidates` says which devices RDMA_DEVICES chooses from:
`host` (the default) every device of the host; `spec` only those whose
uverbs node the spec's `linux.devices` lists (a device plugin's
allocation), by device number, so that `all` cannot widen the allocation.
This is hookhost_plugin::allocation of the Rust SDK, in Python.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.policy import PluginInfo
from wit_world.imports import container, host, inject, log
from wit_world.imports.types import FileKind

VARIABLE = "RDMA_DEVICES"
VERBS = "/sys/class/infiniband_verbs"
RDMA_CM = "/dev/infiniband/rdma_cm"
CANDIDATES = ("host", "spec")


def parse_settings(text):
    """The `candidates` setting; anything else in the settings is an error."""
    settings = json.loads(text)
    if not isinstance(settings, dict):
        raise Err("invalid settings: must be a JSON object")
    unknown = sorted(set(settings) - {"candidates"})
    if unknown:
        raise Err(f"invalid settings: unknown field `{unknown[0]}`, expected `candidates`")
    candidates = settings.get("candidates", "host")
    if candidates not in CANDIDATES:
        raise Err(f"invalid settings: candidates: `{candidates}` is not `host` or `spec`")
    return candidates


def refused(error):
    """A host refusal (a WIT `error` variant) as the text a user reads."""
    return getattr(error, "value", repr(error))


def verbs_devices():
    """{device name: uverbs node} for every verbs device on the host."""
    devices = {}
    for ibdev in host.glob(f"{VERBS}/uverbs*/ibdev"):
        node = ibdev.split("/")[-2]
        name = bytes(host.read_file(ibdev, 256)).decode().strip()
        devices[name] = f"/dev/infiniband/{node}"
    return devices


def spec_numbers():
    """major:minor of each character device the spec's linux.devices lists."""
    return {
        (d.major, d.minor) for d in container.spec_devices() if d.kind == FileKind.CHAR_DEVICE
    }


def allocated(devices, listed):
    """The names of the devices whose uverbs node is `listed`, by number."""
    names = []
    for name, node in sorted(devices.items()):
        st = host.stat(node)
        if st.kind == FileKind.CHAR_DEVICE and (st.major, st.minor) in listed:
            names.append(name)
    return names


def narrow(value, wanted, allocation, devices):
    """`wanted`, RDMA_DEVICES's choice among every device, narrowed to the
    `allocation`: `all` means all of it; a name outside it is an error."""
    if value.strip() == "all":
        return [name for name in wanted if name in allocation]
    for name in wanted:
        if name not in allocation:
            have = ", ".join(f"{n} ({devices[n]})" for n in allocation)
            raise Err(
                f"{VARIABLE}: {name} ({devices[name]}) is not among the devices the spec "
                f"allocates in linux.devices ({have}); with the setting `candidates: spec` "
                "the variable can only narrow that allocation"
            )
    return wanted


def selection(value, devices):
    """The device names RDMA_DEVICES asks for, in the order given."""
    value = value.strip()
    if value == "all":
        return sorted(devices)
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise Err(f"{VARIABLE} is empty; set it to `all` or device names")
    for name in names:
        if name not in devices:
            have = ", ".join(sorted(devices)) or "none"
            raise Err(f"{VARIABLE}: no RDMA device `{name}` on this host (it has: {have})")
    return names


class Policy(exports.Policy):
    def describe(self):
        return PluginInfo(
            name="rdma",
            vendor="hookhost",
            version="0.1.0",
            summary=f"RDMA verbs devices, selected by {VARIABLE} (a Python plugin)",
        )

    def validate_settings(self, settings):
        parse_settings(settings)

    def devices(self):
        try:
            return sorted(verbs_devices())
        except Err as e:
            raise Err(refused(e.value))

    def apply(self):
        value = container.getenv(VARIABLE)
        if value is None:
            return
        candidates = parse_settings(host.settings())
        nothing = (
            "the spec's linux.devices allocates no RDMA device and the setting "
            f"`candidates` is `spec`: nothing to inject, whatever {VARIABLE} says"
        )
        listed = spec_numbers() if candidates == "spec" else None
        if listed == set():
            log.log(log.Level.INFO, nothing)
            return
        try:
            devices = verbs_devices()
            if not devices:
                raise Err(f"no RDMA devices on this host (nothing in {VERBS})")
            allocation = None if listed is None else allocated(devices, listed)
            if allocation == []:
                log.log(log.Level.INFO, nothing)
                return
            wanted = selection(value, devices)
            if allocation is not None:
                wanted = narrow(value, wanted, allocation, devices)
            for name in wanted:
                inject.add_device(inject.Device(devices[name], None, None, None, None, None))
            inject.add_device(inject.Device(RDMA_CM, None, None, None, None, None))
        except Err as e:
            raise Err(e.value if isinstance(e.value, str) else refused(e.value))
        log.log(log.Level.INFO, f"RDMA devices for the container: {', '.join(wanted)}")

    def plan_devices(self, names):
        """CDI: the named devices (as `devices` lists them) and the CM node."""
        try:
            devices = verbs_devices()
            for name in names:
                if name not in devices:
                    have = ", ".join(sorted(devices)) or "none"
                    raise Err(f"no RDMA device `{name}` on this host (it has: {have})")
            for name in names:
                inject.add_device(inject.Device(devices[name], None, None, None, None, None))
            inject.add_device(inject.Device(RDMA_CM, None, None, None, None, None))
        except Err as e:
            raise Err(e.value if isinstance(e.value, str) else refused(e.value))
