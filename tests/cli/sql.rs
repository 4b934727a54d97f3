//! `sql:` steps (SPEC §2 "Composition, compute, secrets and notifications"): statements in
//! one transaction against SQLite or PostgreSQL, values bound and never spliced, the last
//! statement's rows printed as a table, the first row's columns as the job's outputs.

use crate::engine_support::Workspace;

/// A warehouse filled by one job and reported on by the next; the customer's name is an
/// attempt at injection that must be stored as it is.
const WAREHOUSE: &str = r#"
params:
  day: { type: string, default: "2026-12-01" }
  db: { type: string, default: "sqlite:warehouse.db" }
jobs:
  load:
    steps:
      - sql:
          url: "${{ params.db }}"
          query: |
            create table orders (day text, customer text, amount integer);
            insert into orders values (?1, ?2, 30), (?1, 'bob', 12), ('2026-11-30', 'eve', 5);
          args: ["${{ params.day }}", "x'); drop table orders; --"]
  report:
    needs: [load]
    steps:
      - sql:
          url: "${{ params.db }}"
          query: |
            select count(*) as orders, sum(amount) as total
            from orders where day = ?1;
          args: ["${{ params.day }}"]
  use:
    needs: [report]
    steps:
      - run: echo "orders=${{ needs.report.outputs.orders }} total=${{ needs.report.outputs.total }}" > got.txt
"#;

fn job<'a>(show: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    show["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|job| job["name"] == name))
        .unwrap_or_else(|| panic!("no job {name} in {show}"))
}

#[test]
fn sql_steps_bind_values_print_a_table_and_give_the_first_row_as_outputs() {
    let ws = Workspace::with_workflow(WAREHOUSE);
    let output = ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    assert_eq!(ws.read("got.txt"), "orders=2 total=42\n", "{output}");
    let show = ws.show("last");
    assert_eq!(job(&show, "report")["outputs"]["orders"], "2", "{show}");

    let logs = ws.coreflow().args(["logs", "last", "report"]).succeeds();
    let table: Vec<&str> = logs
        .stdout()
        .lines()
        .map(|line| line.split_once(" | ").map_or(line, |(_, text)| text))
        .collect();
    assert!(
        table.windows(4).any(|w| w[0].contains("orders")
            && w[0].contains("total")
            && w[1].starts_with("--")
            && w[2].contains('2')
            && w[2].contains("42")
            && w[3].contains("(1 row)")),
        "{logs}"
    );

    // The injection attempt is a customer's name, and the table is still there.
    let check = Workspace::new();
    check.file(
        "check.yaml",
        "jobs:\n  count:\n    steps:\n      - sql: { url: \"sqlite:WAREHOUSE\", query: \"select customer from orders where amount = 30\" }\n"
            .replace("WAREHOUSE", &ws.path().join("warehouse.db").display().to_string()),
    );
    check.coreflow().args(["run", "check.yaml"]).succeeds();
    let show = check.show("last");
    assert_eq!(
        job(&show, "count")["outputs"]["customer"],
        "x'); drop table orders; --",
        "{show}"
    );
}

#[test]
fn a_failing_statement_names_its_position_and_nothing_of_the_transaction_stays() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  setup:
    steps:
      - sql: { url: "sqlite:db.sqlite", query: "create table t (n integer);" }
  broken:
    needs: [setup]
    steps:
      - sql:
          url: sqlite:db.sqlite
          query: |
            insert into t values (1);
            insert into t values (2);
            select n from
              missing_table;
  after:
    needs: [broken]
    run_if: all_done
    steps:
      - sql: { url: "sqlite:db.sqlite", query: "select count(*) as n from t" }
"#,
    );
    let output = ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    let show = ws.show("last");
    assert_eq!(job(&show, "broken")["status"], "failed", "{show}");
    // The two inserts before the failing statement were rolled back with it.
    assert_eq!(job(&show, "after")["outputs"]["n"], "0", "{show}");
    let logs = ws.coreflow().args(["logs", "last", "broken"]).succeeds();
    assert!(
        logs.stdout().contains("statement 3 (line 3") && logs.stdout().contains("missing_table"),
        "{logs}\n{output}"
    );
}

#[test]
fn validate_refuses_templates_in_sql_text_two_step_kinds_and_other_urls() {
    let ws = Workspace::with_workflow(
        r#"
params:
  table: { type: string, default: orders }
jobs:
  spliced:
    steps:
      - sql: { url: "sqlite:db", query: "select * from ${{ params.table }}" }
  both:
    steps:
      - run: echo hi
        sql: { url: "sqlite:db", query: "select 1" }
  elsewhere:
    steps:
      - sql: { url: "mysql://db", query: "select 1" }
  nothing:
    steps:
      - sql: { url: "sqlite:db" }
"#,
    );
    let output = ws.coreflow().args(["validate", "wf.yaml"]).fails(2);
    let text = output.stderr();
    for expected in [
        "wf.yaml:7:41:",
        "templates are not rendered in a SQL `query`",
        "values are bound, never spliced",
        "has both `run` and `sql`; give one",
        "`mysql://db` is not a database URL",
        "expected `sqlite:PATH` or `postgres://…`",
        "needs `query` or `file`",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{output}");
    }
}

#[test]
fn sql_steps_reach_postgresql_with_values_typed_by_the_server() {
    let ws = Workspace::with_workflow(WAREHOUSE);
    let target = ws.path().join("warehouse");
    std::fs::create_dir_all(&target).expect("a folder");
    let url = crate::support::postgres_location(&target)
        .into_string()
        .expect("a UTF-8 URL");
    // PostgreSQL numbers its parameters `$1`, and reads '2026-12-01' as a date for a date.
    ws.file(
        "wf.yaml",
        WAREHOUSE
            .replace(
                "create table orders (day text",
                "create table orders (day date",
            )
            .replace("?1", "$1")
            .replace("?2", "$2"),
    );
    let output = ws
        .coreflow()
        .args(["run", "wf.yaml", "-p", &format!("db={url}")])
        .succeeds();
    assert_eq!(ws.read("got.txt"), "orders=2 total=42\n", "{output}");
}

#[test]
fn a_sql_step_times_out_like_any_other_step_and_its_transaction_is_rolled_back() {
    let ws = Workspace::new();
    let target = ws.path().join("slow");
    std::fs::create_dir_all(&target).expect("a folder");
    let url = crate::support::postgres_location(&target)
        .into_string()
        .expect("a UTF-8 URL");
    ws.file(
        "wf.yaml",
        r#"
params:
  db: { type: string }
jobs:
  slow:
    steps:
      - timeout: 1s
        sql:
          url: "${{ params.db }}"
          query: |
            create table marks (n integer);
            insert into marks values (1);
            select pg_sleep(30);
  after:
    needs: [slow]
    run_if: all_done
    steps:
      - sql:
          url: "${{ params.db }}"
          query: "select count(*) as tables from pg_tables where tablename = 'marks' and schemaname = current_schema()"
"#,
    );
    let output = ws
        .coreflow()
        .args(["run", "wf.yaml", "-p", &format!("db={url}")])
        .fails(1);
    let show = ws.show("last");
    assert_eq!(
        job(&show, "slow")["status"],
        "timed_out",
        "{show}\n{output}"
    );
    // The killed client's transaction never committed: no table was left behind.
    assert_eq!(job(&show, "after")["outputs"]["tables"], "0", "{show}");
}

#[test]
fn a_sql_file_and_the_database_are_found_in_the_job_s_workdir() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  report:
    workdir: reports
    steps:
      - sql: { url: "sqlite:local.db", file: "${{ params.query }}", args: ["7"] }
params:
  query: { type: string, default: count.sql }
"#,
    );
    ws.file(
        "reports/count.sql",
        "create table t (n integer);\ninsert into t values (?1);\nselect n * 6 as answer from t;\n",
    );
    let output = ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    let show = ws.show("last");
    assert_eq!(
        job(&show, "report")["outputs"]["answer"],
        "42",
        "{show}\n{output}"
    );
    assert!(ws.exists("reports/local.db"), "{output}");

    // A file that is not there fails the job, naming it.
    let output = ws
        .coreflow()
        .args(["run", "wf.yaml", "-p", "query=missing.sql"])
        .fails(1);
    let show = ws.show("last");
    let reason = job(&show, "report")["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.contains("cannot read `sql.file`") && reason.contains("missing.sql"),
        "{show}\n{output}"
    );
}
