"""One cold start: a fresh interpreter imports the implementation, starts
its first child (and with it any helper process: resource tracker, fork
server) and joins it.

    python cold_start.py IMPL METHOD REPO

Prints the seconds from just before the import to just after the join.
The worker also times the whole process, interpreter start and exit
included.
"""
import sys
import time

start = time.time()


def main():
    impl, method, repo = sys.argv[1:4]
    if impl == 'mpspawn':
        sys.path.insert(0, repo)
        import mpspawn
        ctx = mpspawn.get_context(method)
    else:
        import multiprocessing
        if hasattr(multiprocessing, 'get_context'):
            ctx = multiprocessing.get_context(method)
        else:
            ctx = multiprocessing
    import bench_targets
    p = ctx.Process(target=bench_targets.noop)
    p.start()
    p.join()
    if p.exitcode != 0:
        raise SystemExit('child exit code %r' % (p.exitcode,))
    sys.stdout.write('%r\n' % (time.time() - start))


if __name__ == '__main__':
    main()
