"""The container's user and its security settings: user, capabilities, no_new_privs, seccomp.

Resolved inside the container after pivot_root (its own /etc/passwd and /etc/group); applied by
``linux._spawn`` in the child that execs the command, in runc's order (see _spawn.c). The
seccomp program was compiled once by the daemon (libseccomp is never called here).
"""

from __future__ import annotations

import resource

from ..linux import caps as lcaps


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


def exec_options(plan: dict, uid: int, gid: int, groups: list[int]) -> dict:
    """The security steps for this plan and user, as ``linux._spawn``'s keyword arguments.

    Docker's defaults unless privileged: the plan's capabilities in the bounding, permitted and
    effective sets (inheritable and ambient empty), no_new_privs, the plan's seccomp program.
    Raises UserError for what a single-id user namespace cannot do."""
    userns = plan.get("userns")  # None (root), "full" or "single" (rootless)
    opts: dict = {"caps": lcaps.caps_mask(plan["caps"]), "last_cap": lcaps.LAST_CAP}
    if userns == "single":
        # setgroups is denied in a single-id namespace, and no other id exists: root keeps what it
        # has (its supplementary groups too)
        if uid != 0 or gid != 0:
            raise UserError(f"cannot switch to user {uid}:{gid}: {SINGLE_ID}")
    elif uid != 0 or gid != 0 or groups or userns == "full":
        # rootless with a full map: the user's own supplementary groups show up as 65534 inside;
        # root in a container has none but its own
        opts["groups"] = groups
        opts["gid"] = gid
    if uid != 0:
        # the kernel clears permitted and effective on setuid away from root: docker's non-root
        # user keeps the bounding set but no effective capabilities
        opts["uid"] = uid
    if plan.get("rlimits"):
        # rootless without cgroups: the limits that can be rlimits (see cgroups.processtree), never
        # above the hard limits we were given (raising one needs CAP_SYS_RESOURCE)
        clamped = []
        for res, value in plan["rlimits"]:
            _soft, hard = resource.getrlimit(res)
            clamped.append((res, value if hard == resource.RLIM_INFINITY else min(value, hard)))
        opts["rlimits"] = clamped
    if not plan.get("privileged", False):
        opts["no_new_privs"] = True
        if plan.get("seccomp"):
            opts["seccomp"] = plan["seccomp"]
    return opts
