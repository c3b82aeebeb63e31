from hatui.load.writes import *  # noqa: F401,F403 re-export: remove after merge
