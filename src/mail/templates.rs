//! Email templates, loaded once at start-up from `templates/email/`. Each email `NAME` has three
//! files: `NAME.subject.txt`, `NAME.txt` and `NAME.html` (which may extend `layout.html`).
use std::{path::Path, sync::Arc};

use minijinja::Environment;
use serde::Serialize;

use super::MailError;

#[derive(Clone)]
pub struct Templates(Arc<Environment<'static>>);

pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Templates {
    /// Loads every file under `dir/email`. Fails on a missing folder or a template that does not parse,
    /// so a broken template stops start-up instead of a job at 3 a.m.
    pub fn load(dir: &Path) -> Result<Self, MailError> {
        let email_dir = dir.join("email");
        let entries = std::fs::read_dir(&email_dir)
            .map_err(|e| MailError::Load(format!("{}: {e}", email_dir.display())))?;
        let mut env = Environment::new();
        for entry in entries {
            let path = entry.map_err(|e| MailError::Load(e.to_string()))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            let source = std::fs::read_to_string(&path)
                .map_err(|e| MailError::Load(format!("{}: {e}", path.display())))?;
            env.add_template_owned(name.clone(), source)
                .map_err(|source| MailError::Template { name, source })?;
        }
        Ok(Self(Arc::new(env)))
    }

    pub fn render(&self, name: &str, context: &impl Serialize) -> Result<Rendered, MailError> {
        let render = |file: String| {
            self.0
                .get_template(&file)
                .and_then(|t| t.render(context))
                .map_err(|source| MailError::Template { name: file, source })
        };
        Ok(Rendered {
            subject: render(format!("{name}.subject.txt"))?.trim().to_owned(),
            text: render(format!("{name}.txt"))?,
            html: render(format!("{name}.html"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_templates_load_and_render() {
        let templates =
            Templates::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/templates")))
                .expect("templates load");
        let rendered = templates
            .render(
                "welcome",
                &serde_json::json!({"name": "Ada", "app_url": "https://x.test"}),
            )
            .unwrap();
        assert_eq!(rendered.subject, "Welcome to Ironclad");
        assert!(rendered.text.contains("Ada"));
        // minijinja escapes `/` too (`&#x2f;`), which browsers decode in attributes.
        assert!(rendered.html.contains("x.test"));
        // HTML output escapes what it interpolates.
        let rendered = templates
            .render(
                "welcome",
                &serde_json::json!({"name": "<b>x</b>", "app_url": "u"}),
            )
            .unwrap();
        assert!(rendered.html.contains("&lt;b&gt;x") && !rendered.html.contains("<b>"));
    }
}
