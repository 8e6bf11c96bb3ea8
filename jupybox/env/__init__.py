"""Reproducible data-science environments: from the environment you have to an image anyone can run.

* :mod:`.binderfiles` reads a repository's Binder files (repo2docker's ``requirements.txt``,
  ``environment.yml``, ``apt.txt``, ``runtime.txt``, ``postBuild``, ``start``) and checks them, with
  ``FILE:LINE`` errors; :mod:`.binder` turns them into a Dockerfile and builds it
  (``jupybox build --binder``) with pip's cache as a build cache mount, and :mod:`.pinning` pins
  what pip installed (exact versions and sha256 hashes) in a lock that rebuilds the same content.
* :mod:`.hostbased`: ``FROM host`` images made portable (``--materialize``; what such an image is,
  and the view of the host under it, live with the images: ``jupybox.image.hostbased``,
  ``jupybox.image.hostview``); :mod:`.commit`: ``jupybox commit CONTAINER|host IMAGE``.
* :mod:`.notebook` and :mod:`.pins`: the image digest each ``%%container`` cell ran, ``lock``,
  ``--locked``, and the images a notebook needs.
* :mod:`.kernelpackages`: ``%pip install`` in a kernel that runs in a container.
"""
