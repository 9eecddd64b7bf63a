"""Explore: notebook-style SQL over the extracts, charts, saved notebooks, and Promote to KPI."""

from datetime import date

import polars as pl
import streamlit as st

from citystat.auth import Role
from citystat.analyst.explore import (
    DEFAULT_ROW_LIMIT, DEFAULT_TIME_LIMIT, MARKS, NO_CHART, add_cell, cell_chart, export_sql, move_cell, new_cell,
    normalise_cells, period_expression, remove_cell, run_cell, source_tables, suggest_chart, update_cell,
)
from citystat.analyst.promote import (
    DeclaredForm, KpiDetails, PromoteError, draft_declared_metric, draft_sql_metric, preview_promotion,
    write_promotion,
)
from citystat.kpis.engine import analyst_limits
from citystat.registry.models import Aggregation, Direction, Unit
from citystat.ui.context import city, store
from citystat.ui.guard import require_role
from citystat.ui.widgets import GRAIN_NAMES

user = require_role(Role.ANALYST)
stat = city()
registry = stat.registry
engine = stat.engine
engine.warm_analyst_worker()  # the first cell then does not wait for the query process to start
fy = registry.city.fiscal_year_start_month
state = st.session_state

EXAMPLE_SQL = ("SELECT district, count(*) AS requests\nFROM service_requests\n"
               "WHERE created_at >= $start\nGROUP BY district\nORDER BY district")
if "explore_cells" not in state:
    state["explore_cells"] = [new_cell(EXAMPLE_SQL, title="Requests by district")]
state.setdefault("explore_results", {})
state.setdefault("explore_notebook", {"name": "", "version": None})


def cells() -> list[dict]:
    return state["explore_cells"]


def sync_sql() -> None:
    """Copy what the analyst typed into the cells model (widgets keep their own state)."""
    updated = cells()
    for cell in updated:
        for field in ("sql", "title"):
            key = f"{field}_{cell['id']}"
            if key in state and state[key] != cell[field]:
                updated = update_cell(updated, cell["id"], **{field: state[key]})
    state["explore_cells"] = updated


def run(cell_id: str) -> None:
    sync_sql()
    cell = next(c for c in cells() if c["id"] == cell_id)
    state["explore_results"][cell_id] = run_cell(
        engine, cell["sql"], row_limit=state.get("explore_row_limit", DEFAULT_ROW_LIMIT),
        time_limit=DEFAULT_TIME_LIMIT, grain=state.get("explore_grain", "month"),
        start=state.get("explore_start", date(1900, 1, 1)), fy_start_month=fy)


def run_all() -> None:
    for cell in list(cells()):
        run(cell["id"])


def change(action, *args) -> None:
    sync_sql()
    state["explore_cells"] = action(cells(), *args)


def open_notebook(name: str) -> None:
    saved = store().load_notebook(name)
    if saved is None:
        state["explore_message"] = ("error", f"There is no notebook called {name!r} any more.")
        return
    try:
        loaded = normalise_cells(saved.cells)
    except ValueError as exc:
        state["explore_message"] = ("error", f"Notebook {name!r} cannot be opened: {exc}")
        return
    # fresh ids so no widget keeps the text of the notebook that was open before
    state["explore_cells"] = [{**c, "id": new_cell()["id"]} for c in loaded]
    state["explore_results"] = {}
    state["explore_notebook"] = {"name": saved.name, "version": saved.version}
    state["explore_message"] = ("success", f"Opened {saved.name!r} (version {saved.version}, by {saved.updated_by}).")


def save_notebook(name: str) -> None:
    from citystat.store.errors import ConflictError, StoreError

    sync_sql()
    loaded = state["explore_notebook"]
    expected = loaded["version"] if loaded["name"] == name else None
    try:
        saved = store().save_notebook(name, cells(), actor=user.actor, expected_version=expected,
                                      overwrite=state.get("explore_replace", False) and expected is None)
    except ConflictError:
        state["explore_message"] = ("error", f"A notebook called {name!r} already exists or was changed by "
                                    "someone else: tick 'Replace' to overwrite it, or choose another name.")
        return
    except StoreError as exc:
        state["explore_message"] = ("error", str(exc))
        return
    state["explore_notebook"] = {"name": saved.name, "version": saved.version}
    state["explore_message"] = ("success", f"Saved {saved.name!r} (version {saved.version}).")


st.title("Explore")
memory_limit, result_limit = analyst_limits()
st.caption("Read-only DuckDB SQL over the registered extracts: each source is a table named by its id. "
           f"Results stop at {state.get('explore_row_limit', DEFAULT_ROW_LIMIT):,} rows, "
           f"{DEFAULT_TIME_LIMIT:g} s, {memory_limit / 1e9:g} GB of memory and {result_limit / 1e6:g} MB. "
           "Cells may use $grain, $start, $end and $fy_start_month.")

main, side = st.columns([3, 1])
with side:
    st.subheader("Sources")
    for table in source_tables(engine):
        with st.expander(f"`{table['id']}`"):
            st.caption(table["description"] + (f" Time column: `{table['time_column']}`." if table["time_column"] else ""))
            st.dataframe(pl.DataFrame(table["columns"]), hide_index=True, width="stretch")

with main:
    message = state.pop("explore_message", None)
    if message:
        (st.success if message[0] == "success" else st.error)(message[1])

    with st.container(border=True):
        top = st.columns(2)
        name = top[0].text_input("Notebook name", value=state["explore_notebook"]["name"], key="notebook_name")
        saved_names = [n.name for n in store().list_notebooks()]
        chosen = top[1].selectbox("Saved notebooks", saved_names, index=None, placeholder="Open a saved notebook…",
                                  key="open_name")
        actions = st.columns([1, 1, 1, 1, 1.3])
        actions[0].button("Save", key="save_notebook", disabled=not name.strip(), width="stretch",
                          on_click=save_notebook, args=(name.strip(),))
        actions[1].button("Open", key="open_notebook", disabled=chosen is None, width="stretch",
                          on_click=open_notebook, args=(chosen,))
        actions[2].button("Run all", key="run_all", width="stretch", on_click=run_all)
        actions[3].button("Add cell", key="add_cell_top", width="stretch", on_click=change, args=(add_cell,))
        actions[4].download_button("Export .sql", export_sql(cells(), name or "notebook"),
                                   file_name=f"{name or 'notebook'}.sql", mime="text/plain", width="stretch")
        st.checkbox("Replace a saved notebook of the same name", key="explore_replace",
                    help="Overwrite a notebook of the same name that you did not open.")
        params = st.columns(3)
        params[0].selectbox("$grain", list(GRAIN_NAMES), index=2, format_func=GRAIN_NAMES.get, key="explore_grain")
        periods = stat.periods("month")  # the data's complete months, newest first
        params[1].date_input("$start", value=periods[-1] if periods else date(1900, 1, 1),
                             min_value=date(1900, 1, 1), key="explore_start",
                             help="Bound as $start in cells; defaults to the first complete month in the data.")
        params[2].number_input("Row limit", min_value=10, max_value=100_000, value=DEFAULT_ROW_LIMIT, step=1000,
                               key="explore_row_limit")

    for number, cell in enumerate(cells(), start=1):
        cell_id = cell["id"]
        with st.container(border=True):
            head = st.columns([4, 1.3, 1, 1, 1])
            head[0].text_input(f"Cell {number}", value=cell["title"], key=f"title_{cell_id}",
                               placeholder="Title (optional)", label_visibility="collapsed")
            head[1].button("Run", key=f"run_{cell_id}", type="primary", on_click=run, args=(cell_id,),
                           width="stretch")
            head[2].button("Up", icon=":material/arrow_upward:", key=f"up_{cell_id}", help="Move this cell up", on_click=change, args=(move_cell, cell_id, -1),
                           disabled=number == 1, width="stretch")
            head[3].button("Down", icon=":material/arrow_downward:", key=f"down_{cell_id}", help="Move this cell down", on_click=change,
                           args=(move_cell, cell_id, 1), disabled=number == len(cells()), width="stretch")
            head[4].button("Remove", icon=":material/close:", key=f"remove_{cell_id}", help="Remove this cell", on_click=change,
                           args=(remove_cell, cell_id), width="stretch")
            st.text_area("SQL", value=cell["sql"], key=f"sql_{cell_id}", height=140, label_visibility="collapsed",
                         placeholder="SELECT ... FROM service_requests")
            result = state["explore_results"].get(cell_id)
            if result is None:
                continue
            if not result.ok:
                st.error(result.error, icon=":material/warning:")
                continue
            frame = result.frame
            note = f"{frame.height:,} rows · {result.seconds:.2f} s"
            if result.truncated:
                note += f" · stopped at the row limit ({frame.height:,}); aggregate or filter to see everything"
            st.caption(note)
            table_tab, chart_tab = st.tabs(["Table", "Chart"])
            table_tab.dataframe(frame, hide_index=True, width="stretch")
            with chart_tab:
                settings = cell["chart"] if cell["chart"].get("mark") not in (None, NO_CHART) else suggest_chart(frame)
                columns = frame.columns
                pick = st.columns(4)
                mark = pick[0].selectbox("Mark", [NO_CHART, *MARKS], key=f"mark_{cell_id}",
                                         index=[NO_CHART, *MARKS].index(settings["mark"]))
                x = pick[1].selectbox("x", columns, key=f"x_{cell_id}",
                                      index=columns.index(settings["x"]) if settings["x"] in columns else 0)
                y = pick[2].selectbox("y", columns, key=f"y_{cell_id}",
                                      index=columns.index(settings["y"]) if settings["y"] in columns else 0)
                colour = pick[3].selectbox("Colour", [None, *columns], key=f"colour_{cell_id}",
                                           format_func=lambda c: "—" if c is None else c,
                                           index=([None, *columns].index(settings["colour"])
                                                  if settings["colour"] in columns else 0))
                wanted = {"mark": mark, "x": x, "y": y, "colour": colour}
                if wanted != cell["chart"]:
                    state["explore_cells"] = update_cell(cells(), cell_id, **wanted)
                chart = cell_chart(frame, mark, x, y, colour)
                if chart is not None:
                    st.altair_chart(chart, width="stretch")
                else:
                    st.caption("Pick a mark, x and y to draw a chart.")

            with st.expander("Promote to KPI"):
                form = st.radio("Form", ["SQL file (this cell's query)", "Declared (pick a source)"],
                                key=f"form_{cell_id}", horizontal=True)
                left, right = st.columns(2)
                metric_id = left.text_input("id", key=f"pid_{cell_id}", placeholder="requests_received")
                title = right.text_input("Title", value=cell["title"], key=f"ptitle_{cell_id}")
                department = left.selectbox("Department", list(registry.departments), key=f"pdept_{cell_id}",
                                            format_func=lambda d: registry.departments[d].name)
                owner = right.text_input("Owner (role accountable)", key=f"powner_{cell_id}")
                description = st.text_input("Description (plain language)", key=f"pdesc_{cell_id}")
                unit = left.selectbox("Unit", [u.value for u in Unit], key=f"punit_{cell_id}",
                                      help="percent values are ratios 0..1")
                direction = right.selectbox("Direction", [d.value for d in Direction], key=f"pdir_{cell_id}")
                grain = left.selectbox("Grain", list(GRAIN_NAMES), index=1, format_func=GRAIN_NAMES.get,
                                       key=f"pgrain_{cell_id}")
                tags = right.text_input("Tags (comma-separated)", key=f"ptags_{cell_id}")
                st.caption("Targets (dated; the latest one started applies; for percent, 0.85 = 85 %)")
                targets = st.data_editor(
                    pl.DataFrame({"from": [date(date.today().year, fy, 1)], "value": [None]},
                                 schema={"from": pl.Date, "value": pl.Float64}),
                    num_rows="dynamic", key=f"ptargets_{cell_id}", hide_index=True)
                declared = None
                if form.startswith("Declared"):
                    source_id = left.selectbox("Source", sorted(engine.available), key=f"psrc_{cell_id}")
                    agg = right.selectbox("Aggregation", [a.value for a in Aggregation], key=f"pagg_{cell_id}")
                    expr = left.text_input("Expression (not needed for count)", key=f"pexpr_{cell_id}")
                    where = right.text_input("Filter (SQL condition)", key=f"pfilter_{cell_id}")
                    rate = left.text_input("Rate numerator condition (makes it a rate: rows meeting it / all rows)",
                                           key=f"prate_{cell_id}")
                    source_columns = engine.columns(source_id)["column_name"].to_list()
                    dimensions = right.multiselect("Dimensions", source_columns, key=f"pdims_{cell_id}")
                    declared = DeclaredForm(source=source_id, agg=agg, expr=expr or None, filter=where or None,
                                            numerator_filter=rate or None, dimensions=dimensions)
                else:
                    st.caption("The query runs once per grain and must return period_start and value. "
                               "Compute period_start with this expression (change the column):")
                    column = st.text_input("Time column", value="created_at", key=f"pcol_{cell_id}")
                    st.code(period_expression(column, fy) + " AS period_start", language="sql", wrap_lines=True)
                target_rows = pl.DataFrame(targets) if not isinstance(targets, pl.DataFrame) else targets
                details = KpiDetails(
                    id=metric_id.strip(), title=title, department=department, owner=owner, description=description,
                    unit=unit, direction=direction, grain=grain,
                    targets=[(row["from"], row["value"]) for row in target_rows.iter_rows(named=True)
                             if row["from"] is not None and row["value"] is not None],
                    tags=[t.strip() for t in tags.split(",") if t.strip()])
                if st.button("Preview", key=f"preview_{cell_id}"):
                    sync_sql()
                    try:
                        draft = (draft_declared_metric(details, declared) if declared
                                 else draft_sql_metric(details, cell["sql"], actor=user.actor))
                        with st.spinner("Validating against the extracts…"):
                            state[f"promotion_{cell_id}"] = (draft, preview_promotion(registry.path, draft))
                    except PromoteError as exc:
                        state.pop(f"promotion_{cell_id}", None)
                        st.error(str(exc))
                promotion = state.get(f"promotion_{cell_id}")
                if promotion:
                    draft, preview = promotion
                    st.markdown("**Entry for metrics.yaml**")
                    st.code(draft.yaml_text, language="yaml", wrap_lines=True)
                    if draft.sql_path:
                        st.markdown(f"**{draft.sql_path}**")
                        st.code(draft.sql_text, language="sql", wrap_lines=True)
                    for problem in preview.problems:
                        (st.error if problem.severity == "error" else st.warning)(f"{problem.severity}: {problem.message}")
                    if preview.ok:
                        st.success("Validation passed." if not preview.problems else "Validation passed with warnings.")
                        if preview.chart is not None:
                            st.altair_chart(preview.chart, width="stretch")
                        if st.button("Write to metrics.yaml", key=f"write_{cell_id}", type="primary"):
                            if not user.has(Role.ANALYST):  # the server-side check, again, at the write
                                st.error("Only analysts may change the registry.")
                            else:
                                try:
                                    written = write_promotion(registry.path, draft)
                                    state.pop(f"promotion_{cell_id}", None)
                                    st.success("Added " + draft.metric_id + ": wrote "
                                               + ", ".join(str(p) for p in written) + ".")
                                except PromoteError as exc:
                                    st.error(str(exc))

    st.button("Add cell", key="add_cell_bottom", on_click=change, args=(add_cell,))
