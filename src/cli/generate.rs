//! `ironclad generate module NAME`: a new layer in the shape every layer has — `mod.rs` (its
//! state), `config.rs` (its `NAME_*` settings), `error.rs` (problem+json), `service.rs` (its
//! queries), `routes.rs` (one documented example route) — with its migration and an integration
//! test, wired into the composition root before the `ironclad-generate:` markers. Every file is
//! prepared first and written only when all of them are: a refused run changes nothing.
//!
//! The templates are `templates/generate/module/*.tmpl`, built into the binary.
use std::{
    fs,
    path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};

const TEMPLATES: [(&str, &str); 7] = [
    (
        "mod",
        include_str!("../../templates/generate/module/mod.rs.tmpl"),
    ),
    (
        "config",
        include_str!("../../templates/generate/module/config.rs.tmpl"),
    ),
    (
        "error",
        include_str!("../../templates/generate/module/error.rs.tmpl"),
    ),
    (
        "service",
        include_str!("../../templates/generate/module/service.rs.tmpl"),
    ),
    (
        "routes",
        include_str!("../../templates/generate/module/routes.rs.tmpl"),
    ),
    (
        "migration",
        include_str!("../../templates/generate/module/migration.rs.tmpl"),
    ),
    (
        "test",
        include_str!("../../templates/generate/module/test.rs.tmpl"),
    ),
];

/// Names Rust, the crate or the code base already give a meaning to.
const TAKEN: &[&str] = &[
    "as",
    "async",
    "await",
    "box",
    "break",
    "const",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "priv",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "use",
    "where",
    "while",
    "yield",
    "abstract",
    "become",
    "do",
    "final",
    "macro",
    "override",
    "unsized",
    "virtual",
    "core",
    "std",
    "alloc",
    "test",
    "main",
    "lib",
    "cli",
    "migration",
    "support",
    "users",
    "orders",
    "products",
    "prices",
];

/// A module name and the forms the templates use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// `team_notes`: the module, its table and its tests.
    pub module: String,
    /// `team-notes`: its URL.
    pub url: String,
    /// `TeamNotes`: its types.
    pub camel: String,
    /// `TEAM_NOTES`: its settings' prefix.
    pub upper: String,
    /// `Team notes`: its docs.
    pub title: String,
}

impl Names {
    pub fn parse(name: &str) -> Result<Self, String> {
        let well_formed = (2..=32).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !name.contains("__")
            && !name.ends_with('_');
        if !well_formed {
            return Err(format!(
                "{name:?} is not a module name: 2 to 32 characters of a-z, 0-9 and single \
                 underscores, starting with a letter (e.g. projects, team_notes)"
            ));
        }
        if TAKEN.contains(&name) {
            return Err(format!(
                "{name:?} is a Rust keyword or a name the code base uses"
            ));
        }
        let camel: String = name
            .split('_')
            .map(|part| part[..1].to_ascii_uppercase() + &part[1..])
            .collect();
        let spaced = name.replace('_', " ");
        Ok(Self {
            module: name.to_owned(),
            url: name.replace('_', "-"),
            camel,
            upper: name.to_ascii_uppercase(),
            title: spaced[..1].to_ascii_uppercase() + &spaced[1..],
        })
    }

    fn fill(&self, template: &str, migration: &str) -> String {
        template
            .replace("__migration__", migration)
            .replace("__Module__", &self.camel)
            .replace("__MODULE__", &self.upper)
            .replace("__module__", &self.module)
            .replace("__url__", &self.url)
            .replace("__Title__", &self.title)
    }
}

/// Generates module `names` in the checkout at `root`; the files written, new ones first.
pub fn module(root: &Path, names: &Names, now: DateTime<Utc>) -> Result<Vec<PathBuf>, String> {
    let m = &names.module;
    let migration = format!("m{}_create_{m}", now.format("%Y%m%d_%H%M%S"));
    let template = |name: &str| {
        let (_, text) = TEMPLATES
            .iter()
            .find(|(n, _)| *n == name)
            .expect("a template");
        names.fill(text, &migration)
    };
    for taken in [
        format!("src/{m}"),
        format!("src/{m}.rs"),
        format!("tests/api/{m}.rs"),
    ] {
        if root.join(&taken).exists() {
            return Err(format!("{taken} exists already: pick another name"));
        }
    }
    let mut files: Vec<(PathBuf, String)> = ["mod", "config", "error", "service", "routes"]
        .into_iter()
        .map(|part| (root.join(format!("src/{m}/{part}.rs")), template(part)))
        .collect();
    let migration_file = root.join(format!("migrations/src/{migration}.rs"));
    files.push((migration_file, template("migration")));
    files.push((root.join(format!("tests/api/{m}.rs")), template("test")));

    let (camel, upper) = (&names.camel, &names.upper);
    let edits: [(&str, Vec<Edit>); 6] = [
        (
            "src/lib.rs",
            vec![Edit::SortedLine(format!("pub mod {m};"), "pub mod ")],
        ),
        (
            "src/startup/config.rs",
            vec![
                Edit::Before(
                    "config fields",
                    format!("pub {m}: crate::{m}::{camel}Config,"),
                ),
                Edit::Before(
                    "config values",
                    format!("{m}: crate::{m}::{camel}Config::from_vars(&vars)?,"),
                ),
            ],
        ),
        (
            "src/startup/mod.rs",
            vec![
                Edit::Before(
                    "layer fields",
                    format!("pub {m}: crate::{m}::{camel}State,"),
                ),
                Edit::Before(
                    "layer states",
                    format!(
                        "let {m} = crate::{m}::{camel}State {{\n    db: db.clone(),\n    \
                         config: Arc::new(config.{m}.clone()),\n}};"
                    ),
                ),
                Edit::Before("layer values", format!("{m},")),
                Edit::Before(
                    "app data",
                    format!("app.app_data(web::Data::new(self.{m}.clone()));"),
                ),
                Edit::Before("routes", format!("crate::{m}::routes,")),
            ],
        ),
        (
            "migrations/src/lib.rs",
            vec![
                Edit::SortedLine(format!("mod {migration};"), "mod m"),
                Edit::Before("migrations", format!("Box::new({migration}::Migration),")),
            ],
        ),
        (
            "tests/api/main.rs",
            vec![Edit::SortedLine(format!("mod {m};"), "mod ")],
        ),
        (
            ".env.example",
            vec![Edit::Append(format!(
                "\n# ---------------------------------------------------------------------------- \
                 {title} (generated)\n# The most items `GET /api/v1/{url}` lists (1 to 500).\n\
                 {upper}_PAGE_SIZE=50\n",
                title = names.title,
                url = names.url,
            ))],
        ),
    ];
    for (file, edits) in edits {
        let path = root.join(file);
        let mut text =
            fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        for edit in edits {
            text = edit.apply(&text).map_err(|why| format!("{file}: {why}"))?;
        }
        files.push((path, text));
    }

    fs::create_dir_all(root.join(format!("src/{m}")))
        .map_err(|e| format!("creating src/{m}: {e}"))?;
    for (path, text) in &files {
        fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

/// One change to an existing file.
enum Edit {
    /// Lines inserted before the `// ironclad-generate: <marker>` line, with its indentation.
    Before(&'static str, String),
    /// A line put where it sorts among the consecutive lines starting with the prefix (as rustfmt
    /// orders `mod` declarations).
    SortedLine(String, &'static str),
    Append(String),
}

impl Edit {
    fn apply(&self, text: &str) -> Result<String, String> {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        match self {
            Self::Before(marker, insert) => {
                let marker = format!("// ironclad-generate: {marker}");
                let at = lines
                    .iter()
                    .position(|l| l.trim() == marker)
                    .ok_or_else(|| format!("no `{marker}` line: wire the module in by hand"))?;
                let indent: String = lines[at].chars().take_while(|c| *c == ' ').collect();
                let new = insert.lines().map(|l| format!("{indent}{l}"));
                lines.splice(at..at, new);
            }
            Self::SortedLine(line, prefix) => {
                let group: Vec<usize> = (0..lines.len())
                    .filter(|i| lines[*i].starts_with(prefix) && lines[*i].ends_with(';'))
                    .collect();
                let (Some(&first), Some(&last)) = (group.first(), group.last()) else {
                    return Err(format!("no `{prefix}…;` lines to add `{line}` to"));
                };
                let at = (first..=last)
                    .find(|i| lines[*i].as_str() > line.as_str())
                    .unwrap_or(last + 1);
                lines.insert(at, line.clone());
            }
            Self::Append(block) => return Ok(format!("{text}{block}")),
        }
        Ok(lines.join("\n") + "\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_into_every_form_and_bad_ones_are_refused() {
        let names = Names::parse("team_notes").unwrap();
        assert_eq!(
            (
                names.url.as_str(),
                names.camel.as_str(),
                names.upper.as_str()
            ),
            ("team-notes", "TeamNotes", "TEAM_NOTES")
        );
        assert_eq!(names.title, "Team notes");
        for bad in [
            "",
            "x",
            "Projects",
            "9lives",
            "team-notes",
            "a__b",
            "notes_",
            "type",
            "users",
        ] {
            assert!(Names::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn edits_land_before_their_marker_or_in_sorted_place_and_a_missing_marker_is_an_error() {
        let code = "fn f() {\n    a,\n    // ironclad-generate: things\n}\n";
        let edit = Edit::Before("things", "b,".into());
        assert_eq!(
            edit.apply(code).unwrap(),
            "fn f() {\n    a,\n    b,\n    // ironclad-generate: things\n}\n"
        );
        assert!(Edit::Before("other", "b,".into()).apply(code).is_err());
        let mods = "//! doc\nmod alpha;\nmod gamma;\n\nfn x() {}\n";
        let sorted = Edit::SortedLine("mod beta;".into(), "mod ")
            .apply(mods)
            .unwrap();
        assert_eq!(
            sorted,
            "//! doc\nmod alpha;\nmod beta;\nmod gamma;\n\nfn x() {}\n"
        );
        let last = Edit::SortedLine("mod zeta;".into(), "mod ")
            .apply(mods)
            .unwrap();
        assert!(last.contains("mod gamma;\nmod zeta;\n"));
    }

    #[test]
    fn a_refused_generation_writes_nothing() {
        let root = std::env::temp_dir().join(format!("generate-{}", uuid::Uuid::new_v4()));
        for dir in ["src/startup", "migrations/src", "tests/api"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        for file in [
            "src/startup/config.rs",
            "src/startup/mod.rs",
            "migrations/src/lib.rs",
        ] {
            fs::write(root.join(file), "mod m1;\n").unwrap();
        }
        fs::write(root.join("tests/api/main.rs"), "mod auth;\n").unwrap();
        fs::write(root.join("src/lib.rs"), "pub mod auth;\n").unwrap();
        // No markers anywhere: the run stops before writing a single file.
        let names = Names::parse("projects").unwrap();
        assert!(module(&root, &names, Utc::now()).is_err());
        assert!(!root.join("src/projects").exists());
        assert_eq!(
            fs::read_to_string(root.join("src/lib.rs")).unwrap(),
            "pub mod auth;\n"
        );
        fs::remove_dir_all(root).unwrap();
    }
}
