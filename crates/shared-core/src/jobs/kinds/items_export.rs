//! `items_export`: the owner's items as CSV (RFC 4180), fetched through the
//! jobs API. The worked example of a kind in docs/architecture.md.

use uuid::Uuid;

use super::NoPayload;
use crate::db::items;
use crate::db::jobs::Job;
use crate::db::Db;
use crate::jobs::kind::{Context, JobError, Kind, Output, Submitters};

pub struct ItemsExport;

impl Kind for ItemsExport {
    const NAME: &'static str = "items_export";
    const SUBMITTERS: Submitters = Submitters::Anyone;
    type Payload = NoPayload;

    async fn perform(ctx: &Context<'_>, job: &Job, _payload: NoPayload) -> Result<Output, JobError> {
        let owner = job.owner_id.ok_or_else(|| JobError::Permanent("an export needs an owner".into()))?;
        Ok(Some((items_csv(ctx.db, owner).await?, "text/csv; charset=utf-8")))
    }
}

/// Rows are read a page at a time so a large export does not hold one huge
/// result set.
const PAGE: i64 = 1000;

async fn items_csv(db: &Db, owner: Uuid) -> Result<String, sqlx::Error> {
    let mut csv = String::from("id,title,description,created_at\r\n");
    let mut skip = 0;
    loop {
        let (page, _) = items::list(db, Some(owner), skip, PAGE).await?;
        for item in &page {
            let created = item.created_at.map(|t| t.to_rfc3339()).unwrap_or_default();
            let fields =
                [item.id.to_string(), item.title.clone(), item.description.clone().unwrap_or_default(), created];
            let line: Vec<String> = fields.iter().map(|f| field(f)).collect();
            csv.push_str(&line.join(","));
            csv.push_str("\r\n");
        }
        if (page.len() as i64) < PAGE {
            return Ok(csv);
        }
        skip += PAGE;
    }
}

/// Quotes a field when it holds a separator, a quote or a line break. A
/// leading `=`, `+`, `-` or `@` is prefixed with `'` so spreadsheets do not
/// run it as a formula (CSV injection).
fn field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\r', '\n']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=1+1"), "'=1+1");
        assert_eq!(field("line\nbreak"), "\"line\nbreak\"");
    }
}
