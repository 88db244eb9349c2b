"""End-to-end tests: the example site, a task worker and the emulator, over real HTTP."""
