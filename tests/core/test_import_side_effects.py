"""Importing the library changes nothing outside itself: no environment variable, no other library's globals.
LiteLLM's settings (its bundled price map, no provider list on stdout) are made when an LM is built."""

from __future__ import annotations

import os
import subprocess
import sys

SNAPSHOT = """
import os, sys, types, importlib, pkgutil

def plain_globals(module):
    plain = (bool, int, float, str, type(None))
    return {k: v for k, v in vars(module).items() if not k.startswith('_') and isinstance(v, plain)}

env = dict(os.environ)
"""


def _run(script: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}  # the test sets it up itself
    done = subprocess.run(
        [sys.executable, "-c", SNAPSHOT + script], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def test_importing_the_package_changes_no_environment_variable() -> None:
    out = _run("import hegelion_dspy\nprint(dict(os.environ) == env)")
    assert out == "True"


def test_importing_every_module_changes_nothing_and_building_a_hosted_lm_sets_litellm_up() -> None:
    """One process (LiteLLM is slow to import): every library and server module imported changes no environment
    variable and no LiteLLM global; building a hosted LM then makes the settings that moved out of import time."""
    script = """
os.environ['LITELLM_LOCAL_MODEL_COST_MAP'] = 'True'  # LiteLLM is imported first here: no price map from the network
env = dict(os.environ)
import litellm
before = plain_globals(litellm)
import hegelion_dspy, hegelion_server
names = []
for package in (hegelion_dspy, hegelion_server):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):
        if not info.name.endswith('__main__'):
            names.append(importlib.import_module(info.name).__name__)
changed = sorted(k for k, v in plain_globals(litellm).items() if before.get(k, object()) != v)
print(len(names) > 40, dict(os.environ) == env, changed)
from hegelion_dspy.lms.chooser import make_lm
del os.environ['LITELLM_LOCAL_MODEL_COST_MAP']
litellm.suppress_debug_info = False
make_lm('openai/gpt-4o-mini', api_key='sk-test')
print(os.environ.get('LITELLM_LOCAL_MODEL_COST_MAP'), litellm.suppress_debug_info)
"""
    assert _run(script).splitlines() == ["True True []", "True True"]


def test_importing_the_lm_chooser_does_not_import_litellm() -> None:
    assert _run("import hegelion_dspy.lms.chooser\nprint('litellm' in sys.modules)") == "False"
