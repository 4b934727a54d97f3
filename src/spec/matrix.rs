//! A job's matrix legs, as GitHub Actions makes them: the product of the axes, less
//! `exclude`, extended or added to by `include`. Shared by run creation (which renders
//! template axes against the run's parameters), `graph` and `validate`.

use indexmap::IndexMap;

use crate::spec::model::{Axis, Matrix, Text};

/// How a template axis (`os: ${{ params.systems }}`) gets its values: the rendered text, or
/// why it could not be rendered.
pub type RenderAxis<'a> = dyn Fn(&Text) -> Result<String, String> + 'a;

/// The legs of a matrix, as GitHub Actions makes them: every combination of the axes'
/// values (first axis slowest); then each `exclude` entry drops the combinations matching all
/// its keys; then each `include` entry extends every combination (of the axes) whose axis
/// values it matches, without overwriting them (values an earlier entry added may be), and
/// is added as a leg of its own when it matches none. A leg equal to an earlier one is the
/// same leg. An empty matrix has one leg without values.
///
/// # Errors
/// A template axis that does not render to a JSON array; no legs at all.
pub fn legs(
    matrix: &Matrix,
    render: &RenderAxis<'_>,
) -> Result<Vec<IndexMap<String, String>>, String> {
    if matrix.is_empty() {
        return Ok(vec![IndexMap::new()]);
    }
    let mut combos: Vec<IndexMap<String, String>> = if matrix.axes.is_empty() {
        Vec::new()
    } else {
        vec![IndexMap::new()]
    };
    for (key, axis) in &matrix.axes {
        let values = axis_values(key, axis, render)?;
        let mut next = Vec::with_capacity(combos.len() * values.len());
        for combo in &combos {
            for value in &values {
                let mut extended = combo.clone();
                extended.insert(key.clone(), value.clone());
                next.push(extended);
            }
        }
        combos = next;
    }
    let matches = |combo: &IndexMap<String, String>, entry: &IndexMap<String, Text>| {
        entry
            .iter()
            .all(|(k, v)| combo.get(k).is_some_and(|c| c == v.as_str()))
    };
    combos.retain(|combo| !matrix.exclude.iter().any(|entry| matches(combo, entry)));
    let originals = combos.len();
    for entry in &matrix.include {
        let mut extended = false;
        for combo in &mut combos[..originals] {
            let fits = entry
                .iter()
                .filter(|(k, _)| matrix.axes.contains_key(*k))
                .all(|(k, v)| combo.get(k).is_some_and(|c| c == v.as_str()));
            if fits {
                for (k, v) in entry {
                    combo.insert(k.clone(), v.as_str().to_owned());
                }
                extended = true;
            }
        }
        if !extended {
            combos.push(
                entry
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().to_owned()))
                    .collect(),
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    combos.retain(|combo| {
        let mut pairs: Vec<(&String, &String)> = combo.iter().collect();
        pairs.sort();
        seen.insert(format!("{pairs:?}"))
    });
    if combos.is_empty() {
        return Err("the matrix has no combinations left (every one is excluded)".to_owned());
    }
    Ok(combos)
}

/// The values of one axis; a template's rendered JSON array, whose strings are taken as they
/// are and any other item as its JSON text.
fn axis_values(key: &str, axis: &Axis, render: &RenderAxis<'_>) -> Result<Vec<String>, String> {
    match axis {
        Axis::Values(values) => Ok(values.iter().map(|v| v.as_str().to_owned()).collect()),
        Axis::Template(text) => {
            let rendered =
                render(text).map_err(|e| format!("matrix axis `{key}` cannot be rendered: {e}"))?;
            match serde_json::from_str::<serde_json::Value>(rendered.trim()) {
                Ok(serde_json::Value::Array(items)) if !items.is_empty() => Ok(items
                    .into_iter()
                    .map(|item| match item {
                        serde_json::Value::String(text) => text,
                        other => other.to_string(),
                    })
                    .collect()),
                Ok(serde_json::Value::Array(_)) => {
                    Err(format!("matrix axis `{key}` rendered an empty list"))
                }
                _ => {
                    let mut shown: String = rendered.chars().take(80).collect();
                    if shown.len() < rendered.len() {
                        shown.push('…');
                    }
                    Err(format!(
                        "matrix axis `{key}` rendered `{shown}`, which is not a JSON array"
                    ))
                }
            }
        }
    }
}

/// A renderer for plans made without a run (`graph`): template axes are not known.
/// # Errors
/// Always.
pub fn unknown_axes(_: &Text) -> Result<String, String> {
    Err("known only when a run is created".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::load::parse_str;

    /// The legs of the matrix written in `yaml` (the body of `matrix:`), each as `k=v,…`.
    fn legs_of(yaml: &str) -> Result<Vec<String>, String> {
        let indented: String = yaml.lines().map(|l| format!("      {l}\n")).collect();
        let src = format!(
            "params:\n  list: {{}}\njobs:\n  t:\n    matrix:\n{indented}    steps: [{{ run: x }}]\n"
        );
        let loaded = parse_str("wf.yaml", &src).map_err(|e| format!("{e:?}"))?;
        let matrix = &loaded.workflow.jobs["t"].matrix;
        let render = |text: &Text| Ok(text.as_str().replace("${{ params.list }}", r#"["a", 1]"#));
        legs(matrix, &render).map(|legs| {
            legs.iter()
                .map(|leg| {
                    leg.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect()
        })
    }

    /// The examples of GitHub Actions' documentation ("Running variations of jobs in a
    /// workflow"), with the jobs it says they make, in its order.
    #[test]
    fn legs_are_those_github_actions_documents() {
        let table: &[(&str, &[&str])] = &[
            // "Expanding or adding matrix configurations": the worked example.
            (
                "fruit: [apple, pear]\nanimal: [cat, dog]\ninclude:\n  - color: green\n  - color: pink\n    animal: cat\n  - fruit: apple\n    shape: circle\n  - fruit: banana\n  - fruit: banana\n    animal: cat\n",
                &[
                    "fruit=apple,animal=cat,color=pink,shape=circle",
                    "fruit=apple,animal=dog,color=green,shape=circle",
                    "fruit=pear,animal=cat,color=pink",
                    "fruit=pear,animal=dog,color=green",
                    "fruit=banana",
                    "fruit=banana,animal=cat",
                ],
            ),
            // "Example: Expanding configurations".
            (
                "os: [windows-latest, ubuntu-latest]\nnode: [14, 16]\ninclude:\n  - os: windows-latest\n    node: 16\n    npm: 6\n",
                &[
                    "os=windows-latest,node=14",
                    "os=windows-latest,node=16,npm=6",
                    "os=ubuntu-latest,node=14",
                    "os=ubuntu-latest,node=16",
                ],
            ),
            // "Example: Adding configurations": 9 combinations and one more.
            (
                "os: [macos-latest, windows-latest, ubuntu-latest]\nversion: [12, 14, 16]\ninclude:\n  - os: windows-latest\n    version: 17\n",
                &[
                    "os=macos-latest,version=12",
                    "os=macos-latest,version=14",
                    "os=macos-latest,version=16",
                    "os=windows-latest,version=12",
                    "os=windows-latest,version=14",
                    "os=windows-latest,version=16",
                    "os=ubuntu-latest,version=12",
                    "os=ubuntu-latest,version=14",
                    "os=ubuntu-latest,version=16",
                    "os=windows-latest,version=17",
                ],
            ),
            // No axes: every `include` entry is a job.
            (
                "include:\n  - site: production\n    datacenter: site-a\n  - site: staging\n    datacenter: site-b\n",
                &[
                    "site=production,datacenter=site-a",
                    "site=staging,datacenter=site-b",
                ],
            ),
            // "Excluding matrix configurations": 12 combinations less 3.
            (
                "os: [macos-latest, windows-latest]\nversion: [12, 14, 16]\nenvironment: [staging, production]\nexclude:\n  - os: macos-latest\n    version: 12\n    environment: production\n  - os: windows-latest\n    version: 16\n",
                &[
                    "os=macos-latest,version=12,environment=staging",
                    "os=macos-latest,version=14,environment=staging",
                    "os=macos-latest,version=14,environment=production",
                    "os=macos-latest,version=16,environment=staging",
                    "os=macos-latest,version=16,environment=production",
                    "os=windows-latest,version=12,environment=staging",
                    "os=windows-latest,version=12,environment=production",
                    "os=windows-latest,version=14,environment=staging",
                    "os=windows-latest,version=14,environment=production",
                ],
            ),
        ];
        for (yaml, expected) in table {
            assert_eq!(legs_of(yaml).unwrap(), *expected, "for\n{yaml}");
        }
    }

    /// A 5 × 5 matrix: `exclude` first (also of a combination that `include` adds back, as
    /// GitHub Actions processes `include` after `exclude`), then `include` extending rows it
    /// matches and adding the one it matches none of.
    #[test]
    fn a_five_by_five_matrix_with_include_and_exclude() {
        let legs = legs_of(
            "py: ['3.9', '3.10', '3.11', '3.12', '3.13']\nos: [a, b, c, d, e]\nexclude:\n  - os: e\n  - py: '3.9'\n    os: a\n  - py: '3.13'\ninclude:\n  - py: '3.12'\n    extra: x\n  - os: a\n    extra: y\n  - py: '3.9'\n    os: a\n  - py: '3.14'\n    os: a\n",
        )
        .unwrap();
        let mut expected = Vec::new();
        for py in ["3.9", "3.10", "3.11", "3.12"] {
            for os in ["a", "b", "c", "d"] {
                match (py, os) {
                    ("3.9", "a") => {}
                    ("3.12", "a") => expected.push(format!("py={py},os={os},extra=y")),
                    ("3.12", _) => expected.push(format!("py={py},os={os},extra=x")),
                    (_, "a") => expected.push(format!("py={py},os={os},extra=y")),
                    _ => expected.push(format!("py={py},os={os}")),
                }
            }
        }
        // `py: 3.9, os: a` matches no remaining combination: it comes back as a leg of its
        // own, as does `3.14`.
        expected.push("py=3.9,os=a".to_owned());
        expected.push("py=3.14,os=a".to_owned());
        assert_eq!(legs, expected);
    }

    #[test]
    fn template_axes_render_json_arrays() {
        assert_eq!(
            legs_of("x: ${{ params.list }}\ny: [p]\n").unwrap(),
            ["x=a,y=p", "x=1,y=p"]
        );
        let render = |_: &Text| Ok("nope".to_owned());
        let mut matrix = Matrix::default();
        matrix
            .axes
            .insert("os".into(), Axis::Template(Text("${{ params.os }}".into())));
        assert_eq!(
            legs(&matrix, &render).unwrap_err(),
            "matrix axis `os` rendered `nope`, which is not a JSON array"
        );
        let render = |_: &Text| Ok("[]".to_owned());
        assert_eq!(
            legs(&matrix, &render).unwrap_err(),
            "matrix axis `os` rendered an empty list"
        );
        assert!(legs_of("x: [a]\nexclude: [{ x: a }]\n").is_err());
        assert_eq!(
            legs_of("x: [a, a]\n").unwrap(),
            ["x=a"],
            "a leg equal to an earlier one is the same leg"
        );
    }
}
