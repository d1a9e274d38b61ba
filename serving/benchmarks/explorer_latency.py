"""How long a person waits in the explorer, measured in headless Chromium against a batched server.

    python -m serving.benchmarks.explorer_latency --export-base exports --model-name tfode \
        [--pairs 12] [--moves 5] [--points 9] [--seed 0] [--screenshots docs/explorer]

Starts the model server as `tfode-explore --export-base` does (batched, the packaged
batching.config) and the explorer, opens the page, and for `--pairs` seeded pairs of the model's
landmark sentences: types a sentence (its dynamics), types the pair (the linear, slerp and model's
paths, the map, the slider's first point), then moves the slider `--moves` times to seeded
values. Each time is the page's own, from the person's input to the answer drawn. Prints the
count, median, p95 and largest time of each action beside its target; `--screenshots DIR` also
saves the sentence view, a path with its slider, and the map, from the first pair.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile

from ..cli import add_export_arguments

TARGETS_MS = {"slider": 300, "pair": 1000}  # p95 a person waits for a slider move, a new pair


def percentile(values, share: float) -> float:
    """The nearest-rank percentile (share in 0 … 1) of `values`."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.benchmarks.explorer_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_export_arguments(parser)
    parser.add_argument("--pairs", type=int, default=12, help="pairs of sentences typed (default: %(default)s)")
    parser.add_argument("--moves", type=int, default=5, help="slider moves after each pair (default: %(default)s)")
    parser.add_argument("--points", type=int, default=9, help="points of each path (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pairs and the slider's values (default: %(default)s)")
    parser.add_argument("--screenshots", help="a folder for the screenshots of the first pair")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.moves < 1 or args.points < 2:
        parser.error("--pairs and --moves must be >= 1 and --points >= 2")

    from ..explorer.app import ExplorerServer
    from ..explorer.browser import ExplorerPage, chromium
    from ..explorer.cli import packaged_max_batch_size, start_model_server

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-explorer-") as folder:
        try:
            model_server = start_model_server(args.export_base, [args.model_name], folder)
        except (ValueError, RuntimeError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        explorer = ExplorerServer("127.0.0.1", 0, model_server.rest, [args.model_name], packaged_max_batch_size())
        explorer.start()
        driver = chromium(height=1800)  # every section whole on the screen
        try:
            page = ExplorerPage(driver, explorer.address).open()
            if page.error():
                print(f"error: the page says: {page.error()}", file=sys.stderr)
                return 1
            landmarks = [s for s in driver.execute_script("return window.explorerLandmarks()") if s]
            if len(landmarks) < 2:
                print("error: the export holds no latent map to draw pairs from (export it with landmarks)",
                      file=sys.stderr)
                return 2
            for index in range(args.pairs):
                a, b = rng.sample(landmarks, 2)
                page.show(a)
                if index == 0 and args.screenshots:
                    page.element_screenshot("sentence-view", f"{args.screenshots}/sentence.png")
                page.walk(a, b, args.points)
                for _ in range(args.moves):
                    page.slide(rng.randint(1, 99) / 100)
                if index == 0 and args.screenshots:
                    page.element_screenshot("path-view", f"{args.screenshots}/path.png")
                    page.hover_path_point(args.points // 2)
                    page.element_screenshot("map-view", f"{args.screenshots}/map.png")
                if page.error():
                    print(f"error: the page says: {page.error()}", file=sys.stderr)
                    return 1
            timings = page.timings()
        finally:
            driver.quit()
            explorer.shutdown()
            explorer.server_close()
            model_server.stop()

    print(f"explorer latency, {args.model_name}, one run: {args.pairs} pairs × {args.moves} slider moves, "
          f"{args.points}-point paths, batched server, headless Chromium")
    print(f"{'action':<10} {'count':>5} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}  target (p95)")
    for name in ("sentence", "pair", "slider"):
        values = [timing["ms"] for timing in timings if timing["name"] == name]
        target = f"≤ {TARGETS_MS[name]} ms" if name in TARGETS_MS else ""
        print(f"{name:<10} {len(values):>5} {percentile(values, 0.5):>10.0f} {percentile(values, 0.95):>8.0f} "
              f"{max(values):>8.0f}  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
