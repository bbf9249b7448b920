"""How many CPUs this process may really use.

`os.cpu_count()` reports the host's cores, also inside a container limited to
one CPU; forking one worker per host core there only adds processes that
fight over the same quota. The real figure is the smallest of the affinity
mask (cpusets, `taskset`) and the CFS quota of the process's own cgroup and
its ancestors (cgroup v2 `cpu.max`, cgroup v1 `cpu.cfs_quota_us` /
`cpu.cfs_period_us`), rounded down, and never less than one.
"""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


class Mount(NamedTuple):
    """One cgroup mount from /proc/self/mountinfo."""

    root: str
    mount_point: str
    fstype: str
    super_options: frozenset[str]


class Membership(NamedTuple):
    """One line of /proc/self/cgroup: hierarchy id, controllers, path."""

    hierarchy: int
    controllers: frozenset[str]
    path: str


def _unescape(field: str) -> str:
    """mountinfo escapes spaces and the like as octal (`\\040`)."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """The cgroup and cgroup2 mounts listed in a mountinfo file."""
    mounts: list[Mount] = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 5 or len(fields) < sep + 3:
            continue
        fstype = fields[sep + 1]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        mounts.append(
            Mount(
                root=_unescape(fields[3]),
                mount_point=_unescape(fields[4]),
                fstype=fstype,
                super_options=frozenset(fields[sep + 3].split(",")),
            )
        )
    return mounts


def parse_proc_cgroup(text: str) -> list[Membership]:
    """The lines of /proc/self/cgroup (`hierarchy-ID:controller-list:path`)."""
    result: list[Membership] = []
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        controllers = frozenset(c for c in parts[1].split(",") if c)
        result.append(Membership(int(parts[0]), controllers, parts[2]))
    return result


def _cgroup_dir(root: Path, mount: Mount, cgroup_path: str) -> Path | None:
    """Where the process's cgroup appears under a mount, if it is visible there.

    Without a cgroup namespace the mount root can be the container's own
    cgroup (`/docker/<id>`) while /proc/self/cgroup names the same path; the
    part below the mount root is what to append to the mount point.
    """
    if mount.root == "/":
        relative = cgroup_path
    elif cgroup_path == mount.root or cgroup_path.startswith(mount.root.rstrip("/") + "/"):
        relative = cgroup_path[len(mount.root) :]
    else:
        return None
    base = root / mount.mount_point.lstrip("/")
    return base / relative.lstrip("/") if relative.strip("/") else base


def _ancestors(directory: Path, mount_dir: Path) -> list[Path]:
    """The cgroup directory and its parents up to the mount point: limits nest."""
    chain = [directory]
    while directory != mount_dir and mount_dir in directory.parents:
        directory = directory.parent
        chain.append(directory)
    return chain


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _v2_limit(directory: Path) -> float | None:
    """CPUs allowed by a cgroup v2 `cpu.max` ("max 100000" or "QUOTA PERIOD")."""
    text = _read(directory / "cpu.max")
    if not text:
        return None
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v1_limit(directory: Path) -> float | None:
    """CPUs allowed by cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1: none)."""
    quota_text = _read(directory / "cpu.cfs_quota_us")
    period_text = _read(directory / "cpu.cfs_period_us")
    if quota_text is None or period_text is None:
        return None
    try:
        quota, period = int(quota_text), int(period_text)
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cpu_limit(root: Path = Path("/")) -> float | None:
    """The tightest CFS quota over the process's cgroup and its ancestors, in CPUs.

    Looks at cgroup v2 first (its `cpu.max` exists only where the cpu
    controller is enabled, so a hybrid host with an empty unified tree falls
    through), then at the v1 hierarchy that carries the `cpu` controller,
    whether mounted alone or co-mounted as `cpu,cpuacct`.
    """
    cgroup_text = _read(root / "proc/self/cgroup")
    mountinfo_text = _read(root / "proc/self/mountinfo")
    if cgroup_text is None or mountinfo_text is None:
        return None
    memberships = parse_proc_cgroup(cgroup_text)
    mounts = parse_mountinfo(mountinfo_text)
    limits: list[float] = []
    for member in memberships:
        if member.hierarchy == 0 and not member.controllers:
            candidates = [m for m in mounts if m.fstype == "cgroup2"]
            reader = _v2_limit
        elif "cpu" in member.controllers:
            candidates = [m for m in mounts if m.fstype == "cgroup" and "cpu" in m.super_options]
            reader = _v1_limit
        else:
            continue
        for mount in candidates:
            directory = _cgroup_dir(root, mount, member.path)
            if directory is None:
                continue
            mount_dir = root / mount.mount_point.lstrip("/")
            for level in _ancestors(directory, mount_dir):
                limit = reader(level)
                if limit is not None:
                    limits.append(limit)
    return min(limits) if limits else None


def affinity_cpus() -> int:
    """CPUs in the scheduler affinity mask (cpusets and `taskset` shrink it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def available_cpus(root: Path = Path("/"), affinity: int | None = None) -> int:
    """Whole CPUs this process may use: min(affinity, quota), rounded down, at least 1."""
    mask = affinity if affinity is not None else affinity_cpus()
    limit = cgroup_cpu_limit(root)
    cpus = mask if limit is None else min(mask, math.floor(limit))
    result = max(1, cpus)
    log.debug("available CPUs: %d (affinity mask %d, cgroup quota %s)", result, mask, limit)
    return result
