"""Packaging for mpspawn: a universal (py2.py3) pure-Python wheel."""
import io
import os
import re

from setuptools import setup, find_packages

HERE = os.path.dirname(os.path.abspath(__file__))


def read(*parts):
    with io.open(os.path.join(HERE, *parts), encoding='utf-8') as f:
        return f.read()


VERSION = re.search(r"^__version__ = '([^']+)'", read('mpspawn', '__init__.py'), re.M).group(1)

setup(
    name='mpspawn',
    version=VERSION,
    description="Python 3's multiprocessing start methods spawn and forkserver, for Python 2.7",
    long_description=read('README.rst'),
    long_description_content_type='text/x-rst',
    license='BSD-3-Clause',
    packages=find_packages(include=['mpspawn', 'mpspawn.*']),
    python_requires='>=2.7, !=3.0.*, !=3.1.*, !=3.2.*, !=3.3.*, !=3.4.*, !=3.5.*',
    install_requires=['six'],
    extras_require={
        'futures': ['futures; python_version < "3"'],
    },
    zip_safe=False,
    classifiers=[
        'Development Status :: 4 - Beta',
        'Intended Audience :: Developers',
        'License :: OSI Approved :: BSD License',
        'Operating System :: POSIX :: Linux',
        'Operating System :: MacOS :: MacOS X',
        'Programming Language :: Python :: 2',
        'Programming Language :: Python :: 2.7',
        'Programming Language :: Python :: 3',
        'Topic :: System :: Distributed Computing',
    ],
)
