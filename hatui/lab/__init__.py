"""The local lab: network namespaces, hosts and the emulators hatui drills against."""
