"""The last steps before exec: user, capabilities, no_new_privs, seccomp (Docker's defaults).

Runs inside the container after pivot_root, in the process that is about to exec the user's
command. Order matters (runc's): the bounding set is dropped while we still hold CAP_SETPCAP,
the user switch keeps capabilities across setuid, the final capability sets are applied, then
no_new_privs, and seccomp last because the filter may refuse the calls before it. The seccomp
program was compiled once by the parent (libseccomp is never called here).
"""

from __future__ import annotations

import os
import resource

from ..linux import caps as lcaps
from ..linux import seccomp as lseccomp
from ..linux import syscalls as sc


class UserError(Exception):
    pass


def _lookup(path: str, key: str, by_name: bool) -> list[str] | None:
    try:
        with open(path) as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) < 4:
                    continue
                if (fields[0] if by_name else fields[2]) == key:
                    return fields
    except OSError:
        pass
    return None


def resolve_user(user: str | None) -> tuple[int, int, list[int], str]:
    """USER[:GROUP] (names or numbers) against the container's /etc/passwd and /etc/group.

    Returns uid, gid, supplementary gids, home. Like docker: a numeric uid not in /etc/passwd is
    allowed (gid 0, home /), an unknown name is an error.
    """
    if not user:
        user = "0"
    name, _, group = user.partition(":")
    if name.isdigit():
        uid = int(name)
        entry = _lookup("/etc/passwd", name, by_name=False)
    else:
        entry = _lookup("/etc/passwd", name, by_name=True)
        if entry is None:
            raise UserError(f"unable to find user {name}: no matching entries in passwd file")
        uid = int(entry[2])
    gid = int(entry[3]) if entry else 0
    home = entry[5] if entry and len(entry) > 5 and entry[5] else "/"
    username = entry[0] if entry else None
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            g = _lookup("/etc/group", group, by_name=True)
            if g is None:
                raise UserError(f"unable to find group {group}: no matching entries in group file")
            gid = int(g[2])
    groups = []
    if username:
        try:
            with open("/etc/group") as f:
                for line in f:
                    fields = line.rstrip("\n").split(":")
                    if len(fields) >= 4 and username in fields[3].split(","):
                        groups.append(int(fields[2]))
        except OSError:
            pass
    return uid, gid, groups, home


SINGLE_ID = ("rootless mode without /etc/subuid and /etc/subgid ranges for this user maps only root "
             "into the container (see `jupybox info`)")


def apply(plan: dict, uid: int, gid: int, groups: list[int]) -> None:
    privileged = plan.get("privileged", False)
    userns = plan.get("userns")  # None (root), "full" or "single" (rootless)
    try:
        if userns == "single" and uid == 0 and gid == 0:
            pass  # setgroups is denied in a single-id namespace: root keeps what it has
        elif uid != 0 or gid != 0 or groups or userns == "full":
            # rootless with a full map: the user's own supplementary groups show up as 65534
            # inside; root in a container has none but its own
            os.setgroups(groups)
            os.setgid(gid)
    except OSError:
        if userns == "single":
            raise UserError(f"cannot switch to user {uid}:{gid}: {SINGLE_ID}") from None
        raise
    for res, value in plan.get("rlimits") or ():
        # rootless without cgroups: the limits that can be rlimits (see cgroups.processtree)
        _soft, hard = resource.getrlimit(res)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(res, (value, value))
    # inheritable stays empty (docker since 20.10.14, CVE-2022-24769)
    lcaps.apply_caps(plan["caps"], inheritable=False)
    if uid != 0:
        if userns == "single":
            raise UserError(f"cannot switch to user {uid}: {SINGLE_ID}")
        # the kernel clears permitted and effective on setuid away from root: docker's non-root
        # user keeps the bounding set but no effective capabilities
        os.setuid(uid)
    if not privileged:
        sc.set_no_new_privs()
        bpf = plan.get("seccomp")
        if bpf:
            lseccomp.load_filter(bpf)
