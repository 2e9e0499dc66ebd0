"""Where the process runtime finds its cgroup v2 (runtimes/process/containment.py): from the
texts of /proc/<pid>/cgroup and /proc/<pid>/mountinfo as hosts lay them out, and on this host."""

from __future__ import annotations

import os

import pytest

from batchyard.runtimes.process.containment import attempts_cgroup, cgroup_directory, own_cgroup

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
PURE_V2 = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
"""
# A container whose cgroup namespace is the host's: its mount's root is its own cgroup.
BIND_MOUNTED = """\
400 390 0:26 /docker/abc /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw
"""
ESCAPED = """\
30 22 0:26 / /srv/cgroup\\040v2 rw - cgroup2 cgroup2 rw
"""
V1_ONLY = """\
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
"""


@pytest.mark.parametrize(
    ("cgroups", "mountinfo", "found"),
    [
        ("9:name=systemd:/\n4:memory:/x\n0::/\n", HYBRID, "/sys/fs/cgroup/unified"),
        (
            "0::/system.slice/batchyard.service\n",
            PURE_V2,
            "/sys/fs/cgroup/system.slice/batchyard.service",
        ),
        ("0::/\n", PURE_V2, "/sys/fs/cgroup"),
        ("0::/docker/abc/inner\n", BIND_MOUNTED, "/sys/fs/cgroup/inner"),
        ("0::/docker/abc\n", BIND_MOUNTED, "/sys/fs/cgroup"),
        ("0::/other\n", BIND_MOUNTED, None),  # the mount does not show our cgroup
        ("0::/jobs\n", ESCAPED, "/srv/cgroup v2/jobs"),
        ("0::/../../elsewhere\n", PURE_V2, None),  # outside our cgroup namespace
        ("4:memory:/x\n", V1_ONLY, None),
        ("0::/\n", V1_ONLY, None),
    ],
)
def test_the_cgroup_directory_is_found_from_mountinfo(
    cgroups: str, mountinfo: str, found: str | None
) -> None:
    assert cgroup_directory(cgroups, mountinfo) == found


def test_this_hosts_cgroup_and_the_attempts_cgroup_beside_it() -> None:
    own = own_cgroup()
    assert own is not None
    assert os.path.isfile(os.path.join(own, "cgroup.procs"))
    with open("/proc/self/cgroup") as f:
        assert own.endswith(next(line for line in f if line.startswith("0::"))[3:].rstrip("\n/"))
    first, second = attempts_cgroup("/srv/a"), attempts_cgroup("/srv/b")
    assert first is not None
    assert second is not None
    assert os.path.dirname(first) == own
    assert first != second  # one per work directory
    assert attempts_cgroup("/srv/a") == first
