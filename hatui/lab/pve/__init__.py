"""A protocol-faithful Proxmox VE API emulator (HTTPS, ``/api2/json``) for the hatui lab and tests.

Run it::

    python -m hatui.lab.pve --state-dir DIR [--listen 127.0.0.1:8006] [--nodes pve1,pve2]
        [--offline pve2] [--qdevice] [--bridges vmbr0,vmbr1] [--token-id hatui@pve!tui]
        [--backend module:Class --backend-opt KEY=VALUE ...] [--time-scale 1.0]
        [--auth-fail-delay 3] [--ha-interval 2] [--cert F --key F --ca F] [--hostname NAME]

It emulates one PVE 8.4 cluster (the first node answers; ``/nodes/{node}/...`` act as if proxied
to that node). It listens on loopback only (``--allow-non-loopback`` overrides).

Files in the state dir (secrets are 0600 and never printed):

=====================  ==============================================================
``emulator.json``      written once listening: pid, url, host, port, fingerprint, ca_file,
                       token_id, token_secret_file, root_password_file, ... (removed at exit)
``ca.pem``             CA certificate to verify the server with (``verify_ssl=<path>``)
``ca-key.pem``         CA key (0600)
``pve-ssl.pem/.key``   server certificate / key (reused across restarts)
``fingerprint``        server certificate SHA-256, ``AA:BB:...`` upper-case
``token.id``           API token id (``hatui@pve!tui``)
``token.secret``       API token secret (0600)
``root.password``      root@pam password for ticket login (0600)
``authkey.key``        ticket/CSRF signing key (0600)
``state.json``         persisted VMs, snapshots, HA resources, recent tasks
``offline-nodes``      **control file**: node names (one per line) that are unreachable —
                       ``/nodes/<name>/...`` answer 595 ``No route to host``; HA fences them.
                       Re-read on every request; edit it while the emulator runs.
``emulator.log``       request/event log (no secrets)
=====================  ==============================================================

Plug real VM hosts in with ``--backend module:Class`` (see `hatui.lab.pve.backend.VmBackend`).
Start it from Python with `hatui.lab.pve.launch.EmulatorProcess`.
"""

READY_FILE = "emulator.json"
