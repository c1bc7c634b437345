"""Statelock's libvirt qemu hook: the hypervisor itself refuses to start a boot-blocked domain.

``verdict`` is the program the hook runs (standard library only, embedded in the
script); ``install`` renders, installs, removes and inspects the script; ``probe``
asks a running libvirtd whether it calls it. ``drivers.libvirt`` writes the record
the hook reads (``drivers._libvirt_metadata``).
"""
