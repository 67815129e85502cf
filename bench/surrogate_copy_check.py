"""Does the studio's near-copy warning on a surrogate tell the surrogates that still show the error?

Before training, the studio and the CLI compare the surrogate with the flagged image by the judge's
copy descriptor (core.judge.check_surrogate_copy) and warn when it is still a near copy
(core/surrogates/checks.py). This bench asks each world's ground truth about the surrogate itself:
  - flags: the checker's verdict on the surrogate under the flagged prompt ("planted_error" = the
    reversed flag is still drawn);
  - faces: the copy matcher's verdict ("a copy of the flagged output's face").
For the flagged outputs of a seed range and the ways a user makes a surrogate (several strengths),
it counts warned / not warned against still-shows-the-error. Nothing here chooses a threshold: the
warning uses each model's copy threshold as it ships, so any seed range reports.

    PYTHONPATH=. python bench/surrogate_copy_check.py [--seeds 6152-6407] [--per-world 24]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import command_line, markdown_table, scratch_dir, write_report  # noqa: E402
from bench.faceseval import PAINT_BANDS, build_name  # noqa: E402
from core.generate import generate, parse_seeds  # noqa: E402
from core.studio import Studio  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FLAGS_PROMPTS = ("ireland flag", "japan flag")
SDEDIT_STRENGTHS = (0.4, 0.6, 0.8, 0.9)


def flags_surrogates(studio: Studio, prompt: str, flagged):
    """(label, kind, image) for the ways the flags benches and users make a surrogate."""
    from bench.worldeval import scripted_paint_layers
    from core.images import ImageInputError

    try:  # the script repaints the reversed colours it finds; an output drawn otherwise gives it none
        yield "paint (the bench's scripted colours)", "paint", studio.surrogate(
            "paint", flagged, {"layers": scripted_paint_layers(prompt, flagged)}).image
    except ImageInputError:
        pass
    yield "flip", "flip", studio.surrogate("flip", flagged).image
    yield "noise sigma 0.1", "noise", studio.surrogate("noise", flagged, {"sigma": 0.1, "seed": 0}).image
    for s in SDEDIT_STRENGTHS:
        yield f"sdedit {s}", "sdedit", studio.surrogate("sdedit", flagged, {"strength": s, "seed": 0}).image


def faces_surrogates(studio: Studio, flagged):
    from bench.faceseval import band_surrogate, make_surrogate

    for rows in (PAINT_BANDS[0], PAINT_BANDS[2], PAINT_BANDS[4], PAINT_BANDS[6]):
        yield f"paint band rows {rows[0]}-{rows[1]}", "paint", band_surrogate(flagged, rows)[0]
    for s in SDEDIT_STRENGTHS:
        yield f"sdedit {s}", "sdedit", studio.surrogate("sdedit", flagged, {"strength": s, "seed": 0}).image
    yield "another face (nearest non-memorised)", "file", make_surrogate("other_face", flagged, studio)[0]


def measure(world: str, seeds: list[int], per_world: int) -> tuple[str, list[dict]]:
    """Per flagged output and surrogate: warned by the studio, still the error by the ground truth."""
    studio = Studio.open("embedded" if world == "flags" else "faces", data_dir=scratch_dir("surrogate-copy-"))
    rows: list[dict] = []
    prompts = FLAGS_PROMPTS if world == "flags" else ("",)
    flagged_outputs = []
    for prompt in prompts:
        gens = generate(studio.model, prompt, seeds)
        bad = [g for g in gens if studio.check(prompt, g.image)["verdict"] == "planted_error"]
        flagged_outputs += [(prompt, g) for g in bad[:per_world // len(prompts)]]
    for prompt, g in flagged_outputs:
        truth = studio.check(prompt, g.image)
        makers = flags_surrogates(studio, prompt, g.image) if world == "flags" else faces_surrogates(studio, g.image)
        for label, kind, sur in makers:
            check, warning = studio.check_surrogate(g.image, sur, kind)
            v = studio.check(prompt, sur)
            still = v["verdict"] == "planted_error" and (world == "flags" or v["flag"] == truth["flag"])
            rows.append({"world": world, "prompt": prompt, "seed": g.seed, "surrogate": label,
                         "similarity": round(check.similarity, 4), "threshold": check.threshold,
                         "descriptor": check.descriptor, "warned": warning is not None, "still_error": bool(still),
                         "verdict": v["verdict"]})
    return build_name(studio.model) if world == "faces" else studio.model.info.name, rows


def table(rows: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["world"], r["surrogate"])].append(r)
    out = []
    for (world, label), rs in groups.items():
        n = len(rs)
        warned = sum(r["warned"] for r in rs)
        still = sum(r["still_error"] for r in rs)
        both = sum(r["warned"] and r["still_error"] for r in rs)
        sims = sorted(r["similarity"] for r in rs)
        verdicts = Counter(r["verdict"] for r in rs if r["warned"])
        out.append([world, label, n, f"{warned}/{n}", f"{still}/{n}", f"{both}/{warned}" if warned else "-",
                    f"{both}/{still}" if still else "-", ", ".join(f"{v} {c}" for v, c in verdicts.most_common()) or "-",
                    f"{sims[n // 2]:.3f} ({sims[0]:.3f}-{sims[-1]:.3f})"])
    return markdown_table(["world", "surrogate", "n", "warned", "still the error (ground truth)",
                           "warned that still show it", "of those still showing it, warned",
                           "ground truth on the warned", "similarity: median (min-max)"], out)


def totals(rows: list[dict]) -> str:
    lines = []
    for world in sorted({r["world"] for r in rows}):
        rs = [r for r in rows if r["world"] == world]
        w = [r for r in rs if r["warned"]]
        s = [r for r in rs if r["still_error"]]
        # surrogates the ground truth calls right: flags' checker says correct; faces: no copy of the face
        right = [r for r in rs if (r["verdict"] == "correct" if world == "flags" else not r["still_error"])]
        lines.append(f"- {world}: {len(rs)} surrogates of {len({(r['prompt'], r['seed']) for r in rs})} flagged outputs; "
                     f"warned {len(w)}, of which still the error {sum(r['still_error'] for r in w)} "
                     f"(precision {sum(r['still_error'] for r in w) / max(len(w), 1):.2f}); still the error {len(s)}, "
                     f"of which warned {sum(r['warned'] for r in s)} (recall {sum(r['warned'] for r in s) / max(len(s), 1):.2f}); "
                     f"right by the ground truth {len(right)}, of which warned {sum(r['warned'] for r in right)}; "
                     f"descriptor {rs[0]['descriptor']}, threshold {rs[0]['threshold']}.")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="6152-6407", help="where the flagged outputs are drawn (no default was chosen here)")
    ap.add_argument("--per-world", type=int, default=24, help="flagged outputs per world (split over its prompts)")
    ap.add_argument("--worlds", default="flags,faces")
    ap.add_argument("--name", default="surrogate_copy_check")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--render-md", action="store_true", help="only rewrite <name>.md from <name>.json")
    args = ap.parse_args(argv)
    if args.render_md:
        data = json.loads((args.out / f"{args.name}.json").read_text())
        write_md(args.out / f"{args.name}.md", data["command"], data["seeds"], data["builds"], data["rows"])
        return 0
    seeds = parse_seeds(args.seeds, max_count=100_000)
    rows, builds = [], {}
    for world in args.worlds.split(","):
        builds[world], got = measure(world, seeds, args.per_world)
        rows += got
        print(f"{world}: {len(got)} surrogates", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps({"command": command_line(), "seeds": args.seeds,
                                                            "builds": builds, "rows": rows}, indent=1))
    write_md(args.out / f"{args.name}.md", command_line(), args.seeds, builds, rows)
    print((args.out / f"{args.name}.md").read_text())
    return 0


def write_md(path: Path, command: str, seeds: str, builds: dict, rows: list[dict]) -> None:
    blocks = [f"Flagged outputs: the first planted errors among seeds {seeds} (flags: per prompt "
              f"{', '.join(FLAGS_PROMPTS)}; faces: copies of a memorised face). Models: "
              + ", ".join(f"{w} {b}" for w, b in builds.items()) + ". 'Warned': the studio's near-copy warning "
              "(the judge's descriptor at the model's copy threshold); 'still the error': the world's checker "
              "(flags: planted_error; its 'other' is a picture it cannot place, e.g. a noised flag) or copy matcher "
              "(faces: a copy of the same face) on the surrogate itself. The ground truth only measures here.",
              table(rows), totals(rows)]
    write_report(path, "Is the surrogate still the flagged picture? The studio's warning against each world's "
                 "ground truth", command, blocks)


if __name__ == "__main__":
    raise SystemExit(main())
