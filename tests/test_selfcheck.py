"""``python -m mpspawn`` runs, reports every start method and shows the
fork hazard (a forked child hangs on an inherited lock; spawn does not)."""
import sys

import mpspawn
from support import run_python


def test_python_dash_m_mpspawn(tmpdir):
    result = run_python(['-m', 'mpspawn'], cwd=str(tmpdir), timeout=120)
    assert result.returncode == 0, result
    assert 'self-check passed' in result.out, result
    for method in mpspawn.get_all_start_methods():
        assert '  %-10s' % method in result.out
    lines = [line for line in result.out.splitlines() if line.strip().startswith('spawn ')]
    assert any('ok: the child logged' in line for line in lines), result
    if sys.platform.startswith('linux'):
        fork_lines = [line for line in result.out.splitlines()
                      if line.strip().startswith('fork ') and 'HANG' in line]
        assert fork_lines, result
