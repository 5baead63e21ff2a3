"""`projection rebuild`: the projection tables recomputed from the event histories and compared with the live ones."""
from __future__ import annotations

from cli.common import EXIT_FAILED, Verbs, emit, shown, year
from read.archive import HistoryArchive
from read.projection import EXCLUDED, LEFT_OUT, PRESENCE, UNDETERMINED, rebuild
from runtime.client import deadlines_for


async def cmd_projection_rebuild(args, ctx):
    archive = HistoryArchive(lambda: ctx.engine())  # opened only for a history Temporal no longer has
    outcome = await rebuild(ctx.engine(), await ctx.client(), args.year, deadlines_for(ctx.settings), archive)
    lines = [f"year {outcome.year}: {outcome.workflows} workflows ({outcome.from_archive} from the history archive), "
             f"{outcome.replayed} activities replayed into a fresh schema",
             "compared: " + ", ".join(f"{t} ({n} rows)" for t, n in outcome.rows.items()),
             "not compared: " + "; ".join(f"{t}.{c} ({why})" for t, columns in EXCLUDED.items()
                                         for c, why in columns.items()),
             "compared as present or not: " + "; ".join(f"{t}.{c} ({why})" for t, columns in PRESENCE.items()
                                                        for c, why in columns.items()),
             "rows not compared: " + "; ".join(f"{t} with {c} {', '.join(values)} ({why})"
                                               for t, (c, values, why) in LEFT_OUT.items())]
    lines += [f"replay failed: {shown(f)}" for f in outcome.failures]
    if outcome.undetermined:
        lines.append(f"{len(outcome.undetermined)} values not compared: {UNDETERMINED}")
    report = outcome.as_json()
    lines += [f"{d['table']} {shown(d['key'])} {d['column']}: live {shown(d['live'])}, rebuilt {shown(d['rebuilt'])}"
              for d in report["differences"]]
    lines.append(f"{len(outcome.differences)} differences")
    emit(args, report, "\n".join(lines))
    return EXIT_FAILED if outcome.differences or outcome.failures else 0


def register(verbs: Verbs) -> None:
    p = verbs.add("projection", "rebuild", cmd_projection_rebuild,
                  "recompute the year's projection tables (targets, teams, publications, follow-ups, draws and "
                  "their selections, targeted entities and pools, the outbox, alerts) from the event histories into "
                  "a fresh schema and name every difference from the live ones")
    p.add_argument("--year", type=year, required=True, help="the plan year")
