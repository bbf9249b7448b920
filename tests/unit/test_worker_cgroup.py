"""CPU detection from fake /proc and /sys trees: every layout the worker meets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from corescale.worker.cgroup import available_cpus, cgroup_cpu_limit, parse_mountinfo

# This VM: cgroup v1 with cpu and cpuacct mounted apart, plus an empty unified tree.
HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
COMOUNTED_MOUNTINFO = """\
25 24 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw
28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
"""
V2_MOUNTINFO = "30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev shared:4 - cgroup2 cgroup2 rw\n"


def tree(root: Path, proc_cgroup: str, mountinfo: str, files: dict[str, str]) -> Path:
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/cgroup").write_text(proc_cgroup)
    (root / "proc/self/mountinfo").write_text(mountinfo)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return root


def test_v1_separate_cpu_mount_with_a_quota(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        "2:cpuacct:/pod/c1\n1:cpu:/pod/c1\n0::/\n",
        HYBRID_MOUNTINFO,
        {
            "sys/fs/cgroup/cpu/pod/c1/cpu.cfs_quota_us": "150000",
            "sys/fs/cgroup/cpu/pod/c1/cpu.cfs_period_us": "100000",
            "sys/fs/cgroup/cpu/pod/cpu.cfs_quota_us": "-1",
            "sys/fs/cgroup/cpu/pod/cpu.cfs_period_us": "100000",
        },
    )
    assert cgroup_cpu_limit(root) == 1.5
    assert available_cpus(root, affinity=8) == 1


def test_v1_comounted_cpu_cpuacct_without_a_quota(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        "3:cpu,cpuacct:/kubepods/pod1/c1\n",
        COMOUNTED_MOUNTINFO,
        {
            "sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/c1/cpu.cfs_quota_us": "-1",
            "sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/c1/cpu.cfs_period_us": "100000",
        },
    )
    assert cgroup_cpu_limit(root) is None
    assert available_cpus(root, affinity=6) == 6


def test_v1_a_parent_limit_applies_to_the_child(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        "3:cpu,cpuacct:/kubepods/pod1/c1\n",
        COMOUNTED_MOUNTINFO,
        {
            "sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/c1/cpu.cfs_quota_us": "400000",
            "sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/c1/cpu.cfs_period_us": "100000",
            "sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/cpu.cfs_quota_us": "300000",
            "sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/cpu.cfs_period_us": "100000",
        },
    )
    assert available_cpus(root, affinity=16) == 3


def test_v1_container_without_cgroup_namespace(tmp_path: Path) -> None:
    # The mount root is the container's own cgroup, which /proc/self/cgroup names in full.
    mountinfo = "1 0 0:1 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct\n"
    root = tree(
        tmp_path,
        "4:cpu,cpuacct:/docker/abc\n",
        mountinfo,
        {
            "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "200000",
            "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000",
        },
    )
    assert available_cpus(root, affinity=32) == 2


@pytest.mark.parametrize(
    ("cpu_max", "affinity", "expected"),
    [
        ("max 100000", 4, 4),
        ("100000 100000", 4, 1),
        ("250000 100000", 4, 2),
        ("50000 100000", 4, 1),
        ("800000 100000", 3, 3),
    ],
)
def test_v2_cpu_max(tmp_path: Path, cpu_max: str, affinity: int, expected: int) -> None:
    root = tree(
        tmp_path,
        "0::/kubepods/pod/c\n",
        V2_MOUNTINFO,
        {"sys/fs/cgroup/kubepods/pod/c/cpu.max": cpu_max},
    )
    assert available_cpus(root, affinity=affinity) == expected


def test_v2_with_cgroup_namespace_reads_the_mount_root(tmp_path: Path) -> None:
    root = tree(tmp_path, "0::/\n", V2_MOUNTINFO, {"sys/fs/cgroup/cpu.max": "200000 100000"})
    assert available_cpus(root, affinity=64) == 2


def test_hybrid_without_v2_cpu_controller_falls_back_to_v1(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        "1:cpu:/\n0::/\n",
        HYBRID_MOUNTINFO,
        {
            "sys/fs/cgroup/unified/cgroup.procs": "",
            "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "100000",
            "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000",
        },
    )
    assert available_cpus(root, affinity=2) == 1


def test_no_cgroup_files_leaves_the_affinity(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path) is None
    assert available_cpus(tmp_path, affinity=5) == 5
    assert available_cpus(tmp_path, affinity=0) == 1


def test_mountinfo_octal_escapes_and_optional_fields() -> None:
    text = (
        "40 31 0:37 / /sys/fs/cgroup/my\\040cpu rw shared:1 master:2 - cgroup cgroup rw,cpu\n"
        "41 31 0:38 / /proc rw - proc proc rw\n"
    )
    (mount,) = parse_mountinfo(text)
    assert mount.mount_point == "/sys/fs/cgroup/my cpu"
    assert "cpu" in mount.super_options


def test_this_machine_grants_at_least_one_cpu() -> None:
    assert 1 <= available_cpus() <= len(os.sched_getaffinity(0))
