#!/usr/bin/env python
"""Django's command line, with one shortcut: commands in ``NO_SETUP_COMMANDS`` read a file and
print JSON without the database or the app registry, so they run without ``django.setup()``
(which imports every app, the admin and the serving clients: about 2 s of a 4 s run of
``compute_ratings`` on 1.67M battles; bench/cli_speed.py). Settings still load, lazily, and are
validated as usual; ``manage.py help`` lists the commands either way."""
import os
import sys

#: Commands that touch no model, no database and no app registry (tests/test_compute_ratings.py
#: runs them through this file, and through call_command after setup).
NO_SETUP_COMMANDS = {"compute_ratings": "arena.management.commands.compute_ratings"}

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if len(sys.argv) > 1 and sys.argv[1] in NO_SETUP_COMMANDS:
        from importlib import import_module

        import_module(NO_SETUP_COMMANDS[sys.argv[1]]).Command().run_from_argv(sys.argv)
    else:
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)
