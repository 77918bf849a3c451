"""hookhost policy for RDMA devices (InfiniBand / RoCE), written in Python.

It is the proof that a vendor can write a policy in a language other than
Rust: componentize-py turns this file into a WebAssembly component of the
same `hookhost:policy` world (see plugins/README.md, "Plugins in Python").

RDMA_DEVICES selects devices by their verbs name, as `ibv_devices` prints
it: `all`, or a comma list such as `mlx5_0,mlx5_1`. The container gets the
selected devices' `/dev/infiniband/uverbsN` nodes and the connection manager
`/dev/infiniband/rdma_cm`. The host maps names to nodes through sysfs:
`/sys/class/infiniband_verbs/uverbsN/ibdev` holds the device name.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.policy import PluginInfo
from wit_world.imports import container, host, inject, log

VARIABLE = "RDMA_DEVICES"
VERBS = "/sys/class/infiniband_verbs"
RDMA_CM = "/dev/infiniband/rdma_cm"


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
        if json.loads(settings) != {}:
            raise Err("this policy has no settings; leave `settings` empty")

    def devices(self):
        try:
            return sorted(verbs_devices())
        except Err as e:
            raise Err(refused(e.value))

    def apply(self):
        value = container.getenv(VARIABLE)
        if value is None:
            return
        try:
            devices = verbs_devices()
            if not devices:
                raise Err(f"no RDMA devices on this host (nothing in {VERBS})")
            wanted = selection(value, devices)
            for name in wanted:
                inject.add_device(inject.Device(devices[name], None, None, None, None, None))
            inject.add_device(inject.Device(RDMA_CM, None, None, None, None, None))
        except Err as e:
            raise Err(e.value if isinstance(e.value, str) else refused(e.value))
        log.log(log.Level.INFO, f"RDMA devices for the container: {', '.join(wanted)}")
