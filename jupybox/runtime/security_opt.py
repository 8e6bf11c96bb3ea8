"""docker's ``--security-opt``: what jupybox honors, and a one-line refusal for the rest.

* ``no-new-privileges[=true|false]`` (docker also takes ``:``): the no_new_privs bit of the
  container's processes. Set by default for every non-privileged container (a setuid binary gains
  nothing); ``=false`` clears it (the seccomp filter is then loaded while PID 1 still holds
  CAP_SYS_ADMIN, as runc does); ``=true`` sets it for a --privileged one too.
* ``seccomp=unconfined``: no filter; ``seccomp=PROFILE.json``: docker's JSON form, read by the
  client (as docker's CLI does: the profile, not its path, is what the container keeps), checked
  with limits and compiled at start (``linux.seccomp_docker``). --privileged runs without a filter
  whatever this says (docker's rule).
* ``apparmor=unconfined``: accepted, and true of every container: jupybox loads no AppArmor profile
  (the machines it targets run without AppArmor). Any other profile name is refused.
* Anything else (``label=...`` for SELinux, ``systempaths=unconfined``, ...) is refused.
"""

from __future__ import annotations

from ..errors import UsageError

SUPPORTED = "no-new-privileges[=true|false], seccomp=unconfined|PROFILE.json, apparmor=unconfined"
MAX_OPTS = 16


def _split(opt: str) -> tuple[str, str | None]:
    for sep in ("=", ":"):  # docker still accepts the old "key:value" form
        if sep in opt:
            key, _, value = opt.partition(sep)
            return key, value
    return opt, None


def parse(items, read_file=None) -> list[str]:
    """``--security-opt`` values -> the normalized list a spec keeps (``seccomp=<json>`` for a
    profile); ``read_file(path) -> str`` reads a profile (the client's file), None: the value must
    already be JSON (a spec from the wire)."""
    items = [items] if isinstance(items, str) else list(items or [])
    if len(items) > MAX_OPTS:
        raise UsageError(f"--security-opt: at most {MAX_OPTS}")
    out: list[str] = []
    for opt in items:
        opt = str(opt)
        key, value = _split(opt)
        shown = opt if len(opt) <= 80 else opt[:77] + "..."
        if key == "no-new-privileges":
            if value not in (None, "true", "false"):
                raise UsageError(f"invalid --security-opt {shown!r}: no-new-privileges takes true or false")
            out.append(f"no-new-privileges={value or 'true'}")
        elif key == "seccomp" and value:
            if value == "unconfined":
                out.append("seccomp=unconfined")
                continue
            if value.lstrip().startswith("{"):
                text, where = value, "seccomp profile"
            elif read_file is None:
                raise UsageError("--security-opt seccomp: the profile's JSON is expected here, not a path")
            else:
                text, where = read_file(value), f"seccomp profile {value}"
            # (imported here: the profile's checker and compiler cost ~15 ms, which every other
            # `jupybox run` would pay at its start)
            from ..linux import seccomp_docker

            out.append("seccomp=" + seccomp_docker.compact(seccomp_docker.load(text, where)))
        elif key == "apparmor" and value:
            if value != "unconfined":
                raise UsageError(f"invalid --security-opt {shown!r}: jupybox loads no AppArmor profile (every "
                                 f"container runs unconfined: apparmor=unconfined is accepted)")
            out.append("apparmor=unconfined")
        else:
            raise UsageError(f"unsupported --security-opt {shown!r}: jupybox supports {SUPPORTED}")
    keys = [_split(o)[0] for o in out]
    for k in set(keys):
        if keys.count(k) > 1:
            raise UsageError(f"--security-opt {k} given twice")
    return out


def read_profile(path: str) -> str:
    """A profile file, read with a size limit (UsageError in one line)."""
    from ..linux.seccomp_docker import MAX_PROFILE

    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PROFILE + 1)
    except OSError as e:
        raise UsageError(f"--security-opt seccomp={path}: {e.strerror}") from None
    if len(data) > MAX_PROFILE:
        raise UsageError(f"seccomp profile {path}: larger than {MAX_PROFILE >> 10} KiB")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise UsageError(f"seccomp profile {path}: not UTF-8 text") from None


def effective(opts: list[str]) -> tuple[bool | None, str | dict]:
    """(no_new_privs: None for the default, seccomp: "default", "unconfined" or a profile)."""
    from ..linux import seccomp_docker

    nnp, sc = None, "default"
    for opt in opts or ():
        key, value = _split(opt)
        if key == "no-new-privileges":
            nnp = value != "false"
        elif key == "seccomp":
            sc = "unconfined" if value == "unconfined" else seccomp_docker.load(value)
    return nnp, sc
