"""Sphinx configuration for the mpspawn documentation."""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, '..', 'mpspawn', '__init__.py')) as f:
    release = re.search(r"^__version__ = '([^']+)'", f.read(), re.M).group(1)
version = release

project = 'mpspawn'
author = 'the mpspawn developers'
copyright = '2026, the mpspawn developers'
extensions = []
master_doc = 'index'
exclude_patterns = ['_build']
html_theme = 'alabaster'
nitpicky = False
