"""JupyboxSpawner: each user's notebook server in a jupybox container, no Docker daemon.

    c.JupyterHub.spawner_class = "jupybox"
    c.JupyterHub.hub_ip = "0.0.0.0"          # servers reach the hub's API from their network
    c.Spawner.mem_limit = "1G"; c.Spawner.cpu_limit = 1; c.Spawner.cpu_guarantee = 0.25

What a start does (in a worker thread: jupybox's API blocks):

1. the hub's network (made on first use) and its firewall (:mod:`jupybox.hub.network`,
   :mod:`jupybox.hub.firewall`);
2. the user's home, the named volume ``jupyterhub-user-{username}`` (kept across restarts,
   owned by the server's uid when made), mounted at ``home_dir``;
3. ``jupybox.run(image, cmd + args, detach=True, ...)`` with ``mem_limit`` -> ``memory``,
   ``cpu_limit`` -> ``cpus`` (a CFS quota), ``cpu_guarantee`` -> ``cpu_shares``
   (1024 per CPU, as docker and Kubernetes map a CPU request), ``pids_limit``, the
   environment of ``Spawner.get_env()`` (the hub's API token and URLs) with the API's host
   replaced by the network's gateway when the hub names a loopback address, labels that say
   whose server it is;
4. the server's address on the network and ``port`` are what the proxy connects to.

The container's id is the spawner's state: after a hub restart ``load_state`` + ``poll`` find a
running server again (a detached container outlives the hub's process), and it is not restarted
(set ``c.JupyterHub.cleanup_servers = False`` so that a hub shutdown leaves servers running).
``stop`` stops and removes the container (the home volume stays); the next start makes a new
one, since the hub gives each start a new API token.

``%%container`` inside a user's server: not available, on purpose. Containers are made only by
their store's service, whose socket is in a 0700 directory of the store that no container sees;
a socket mounted into the user's container would let the user start any container on the host
(with another user's volume, or ``--privileged``): root on the host. Nested containers would need
user namespaces inside the server, which its seccomp profile (docker's) forbids. The server's
environment has ``JUPYBOX_NO_SERVICE`` (the reason, one line) for jupybox there to say so.
"""

from __future__ import annotations

import asyncio
import os
import urllib.parse

from jupyterhub.spawner import Spawner
from jupyterhub.traitlets import ByteSpecification
from traitlets import Dict, Float, Integer, List, Unicode, default, validate

from .. import errors
from . import names, profiles
from .network import HubNetwork

NO_SERVICE = ("%%container is not available in a JupyterHub server started by jupybox: no container may reach "
              "a jupybox store's service (its socket is never mounted into containers)")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "", "::"}


class JupyboxSpawner(Spawner):
    image = Unicode("host", config=True, help="The jupybox image of the servers (without profiles).")
    profiles = List(Dict(), config=True, help="Images and limits a user may choose (see jupybox.hub.profiles).")
    root = Unicode("", config=True, help="The jupybox store (default: $JUPYBOX_ROOT, else jupybox's default).")
    network_name = Unicode("jupyterhub", config=True, help="The bridge network of this hub's servers.")
    pids_limit = Integer(1024, config=True, help="Most processes and threads in a server (0: no limit).")
    uid = Integer(1000, allow_none=True, config=True,
                  help="The uid the server runs as (None: the image's user); a new home volume is given to it.")
    gid = Integer(100, allow_none=True, config=True, help="The server's gid (None: the uid's group in the image).")
    home_dir = Unicode("/home/jovyan", config=True, help="Where the home volume is mounted (and $HOME).")
    volume_name_template = Unicode("jupyterhub-user-{username}", config=True,
                                   help="The home volume's name; {username} is escaped as DockerSpawner does.")
    name_template = Unicode("jupyterhub-{username}{servername}", config=True, help="The container's name.")
    stop_timeout = Float(10.0, config=True, help="Seconds between SIGTERM and SIGKILL at a graceful stop.")
    reachable_host_ports = List(Integer(), config=True,
                                help="TCP ports of the host (on the gateway) servers may reach besides the hub's.")
    extra_run_options = Dict(config=True, help="More jupybox.run options (read_only, tmpfs, cap_drop, ...).")

    container_id = Unicode("")

    @default("ip")
    def _default_ip(self):
        return "0.0.0.0"  # in the container's own network namespace

    @default("port")
    def _default_port(self):
        return 8888  # every server has its own address: the same port for all

    @default("options_form")
    def _default_options_form(self):
        return lambda spawner: profiles.form(profiles.check(spawner.profiles))

    @validate("profiles")
    def _check_profiles(self, proposal):
        return profiles.check(proposal.value)

    def options_from_form(self, formdata):
        return profiles.from_form(formdata)

    # -- names ----------------------------------------------------------------------------------
    @property
    def container_name(self) -> str:
        return names.expand(self.name_template, self.user.name, self.name)

    @property
    def volume_name(self) -> str:
        return names.expand(self.volume_name_template, self.user.name)

    @property
    def _root(self):
        return self.root or None

    def _network(self) -> HubNetwork:
        return HubNetwork(self.root, self.network_name, [self.hub_port] + list(self.reachable_host_ports))

    @property
    def hub_port(self) -> int:
        return urllib.parse.urlsplit(self.hub.api_url).port or 80

    # -- state ----------------------------------------------------------------------------------
    def load_state(self, state):
        super().load_state(state)
        self.container_id = state.get("container_id", "")

    def get_state(self):
        state = super().get_state()
        if self.container_id:
            state["container_id"] = self.container_id
        return state

    def clear_state(self):
        super().clear_state()
        self.container_id = ""

    # -- environment ----------------------------------------------------------------------------
    def get_env(self):
        env = super().get_env()
        env["HOME"] = self.home_dir
        env["JUPYBOX_NO_SERVICE"] = NO_SERVICE
        return env

    def _env_for(self, gateway: str, profile: dict) -> dict:
        env = self.get_env()
        for key, value in (profile.get("environment") or {}).items():
            env[key] = value(self) if callable(value) else str(value)
        if self.hub_connect_url is None:  # the admin said nothing: the hub is reached on the gateway
            for key in ("JUPYTERHUB_API_URL", "JUPYTERHUB_ACTIVITY_URL"):
                env[key] = _with_host(env[key], gateway)
        return env

    # -- start ----------------------------------------------------------------------------------
    def _limits(self, profile: dict) -> dict:
        memory = profile.get("mem_limit", self.mem_limit)
        memory = ByteSpecification().validate(self, memory) if memory is not None else None
        cpus = profile.get("cpu_limit", self.cpu_limit)
        guarantee = profile.get("cpu_guarantee", self.cpu_guarantee)
        pids = profile.get("pids_limit", self.pids_limit)
        if self.mem_guarantee or profile.get("mem_guarantee"):
            self.log.warning("JupyboxSpawner: mem_guarantee is not enforced (jupybox has no soft memory limit); "
                             "it reaches the server only as $MEM_GUARANTEE")
        return {"memory": memory or None, "cpus": float(cpus) if cpus else None,
                "cpu_shares": max(2, int(float(guarantee) * 1024)) if guarantee else None,
                "pids_limit": int(pids) if pids else None}

    def _check_hub_reachable(self) -> None:
        host = urllib.parse.urlsplit(self.hub.api_url).hostname or ""
        if self.hub_connect_url is None and host in LOOPBACK_HOSTS and (self.hub.ip or "") in ("127.0.0.1", "localhost",
                                                                                                 "::1"):
            raise RuntimeError("JupyboxSpawner: the hub listens on {} only, which no container can reach: set "
                               "c.JupyterHub.hub_ip = '0.0.0.0' (servers may reach nothing else of the host: see "
                               "jupybox.hub.firewall)".format(self.hub.ip))

    async def start(self):
        self._check_hub_reachable()
        profile = profiles.choose(self.profiles, self.user_options)
        image = profile.get("image") or self.image
        limits = self._limits(profile)
        network = self._network()
        net = await asyncio.to_thread(network.acquire)
        try:
            env = self._env_for(net["gateway"], profile)
            argv = list(self.cmd or []) + list(self.get_args())
            cid, address = await asyncio.to_thread(self._run, image, argv, env, limits)
        finally:
            network.release_start()
        self.container_id = cid
        self.log.info("JupyboxSpawner: %s's server is container %s (%s) at %s:%s", self.user.name,
                      self.container_name, cid[:12], address, self.port)
        return address, self.port

    def _run(self, image: str, argv: list[str], env: dict, limits: dict) -> tuple[str, str]:
        import jupybox

        self._remove_leftover()
        volume = self._home_volume()
        labels = {names.HUB: self.network_name, names.USER: self.user.name, names.SERVER: self.name,
                  names.VOLUME: volume}
        options = dict(self.extra_run_options)
        options.update(name=self.container_name, env=env, labels=labels, network=self.network_name,
                       volumes=[f"{volume}:{self.home_dir}"], workdir=self.home_dir,
                       **{k: v for k, v in limits.items() if v is not None})
        if self.uid is not None:
            options["user"] = f"{self.uid}:{self.gid}" if self.gid is not None else str(self.uid)
        c = jupybox.run(image, argv, root=self._root, detach=True, **options)
        try:
            address = c.inspect()["NetworkSettings"]["Networks"][self.network_name]["IPAddress"]
            if not address:
                raise errors.RuntimeFailure(f"container {c.name} has no address on {self.network_name}: "
                                            f"it exited at once ({c.logs(tail=5).strip()!r})")
        except BaseException:
            _remove(c)
            raise
        return c.id, address

    def _remove_leftover(self) -> None:
        """A container of this server left by a hub that lost its state (a crash): it is ours
        by its labels, and stale (the hub gives each start a new token)."""
        import jupybox

        try:
            c = jupybox.container(self.container_name, root=self._root)
        except errors.ContainerNotFound:
            return
        labels = (c.config.get("spec") or {}).get("labels") or {}
        if labels.get(names.USER) != self.user.name or labels.get(names.HUB) != self.network_name:
            raise errors.Conflict(f"a container named {self.container_name} exists and is not this server's")
        self.log.warning("JupyboxSpawner: removing %s, left by an earlier start", self.container_name)
        _remove(c)

    def _home_volume(self) -> str:
        """The home volume, made if missing and then given to the server's user (a fresh volume
        is root's; docker would copy the image directory's owner, the host image has none)."""
        from ..api import engine
        from ..runtime.volumes import Volumes

        volumes = Volumes(engine(self._root).layout)
        vol = volumes.ensure(self.volume_name, labels={names.USER: self.user.name})
        st = os.stat(vol.data)
        if self.uid is not None and st.st_uid == 0 and not os.listdir(vol.data):
            os.chown(vol.data, self.uid, self.gid if self.gid is not None else self.uid)
            os.chmod(vol.data, 0o750)
        return vol.name

    # -- poll / stop ----------------------------------------------------------------------------
    def _container(self):
        import jupybox

        if not self.container_id:
            return None
        try:
            return jupybox.container(self.container_id, root=self._root)
        except errors.ContainerNotFound:
            return None

    def _exit_status(self):
        c = self._container()
        if c is None:
            return 0
        state = c.state()
        if state.status.value == "running":
            return None
        return state.exit_code if state.exit_code is not None else 0

    async def poll(self):
        return await asyncio.to_thread(self._exit_status)

    def _stop(self, now: bool) -> None:
        c = self._container()
        if c is not None:
            try:
                if c.status == "running":
                    c.stop(timeout=0 if now else self.stop_timeout)
            except errors.ContainerNotFound:
                pass
            _remove(c)
        self._network().remove_if_unused(self._hub_in_use)

    def _hub_in_use(self) -> bool:
        import jupybox

        for c in jupybox.containers(all=True, root=self._root):
            try:
                if ((c.config.get("spec") or {}).get("labels") or {}).get(names.HUB) == self.network_name:
                    return True
            except errors.ContainerNotFound:
                continue
        return False

    async def stop(self, now=False):
        await asyncio.to_thread(self._stop, bool(now))
        self.container_id = ""


def _remove(c) -> None:
    try:
        c.remove(force=True)
    except errors.ContainerNotFound:
        pass


def _with_host(url: str, host: str) -> str:
    """``url`` with its host replaced (the port and path kept)."""
    parts = urllib.parse.urlsplit(url)
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

