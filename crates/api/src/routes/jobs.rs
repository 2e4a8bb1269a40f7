//! Tag `jobs` (contract Part B): durable background work run by the worker.
//! Owners see and cancel their own jobs; superusers, everyone's.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use shared_core::db::jobs::{self, Job, JobFilter, JobStatus, NewJob};
use shared_core::db::users::User;
use shared_core::jobs::kinds::JobKind;
use uuid::Uuid;

use super::responses::{Invalid, JobLookup};
use crate::error::{ApiError, ValidationIssue};
use crate::extract::auth::CurrentUser;
use crate::extract::body::JsonBody;
use crate::extract::path::PathId;
use crate::extract::query::{Paging, QueryParams};
use crate::json::Json;
use crate::models::{HTTPValidationError, JobCreate, JobPublic, JobsPublic};
use crate::state::AppState;

/// Submit a job.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/",
    tag = "jobs",
    operation_id = "jobs-create_job",
    request_body = JobCreate,
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 202, description = "Accepted (or the existing job for a repeated idempotency key)", body = JobPublic),
        (status = 403, description = "Kind reserved for superusers"),
        (status = 422, description = "Unknown kind or invalid payload", body = HTTPValidationError),
    )
)]
pub async fn create_job(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    JsonBody(body): JsonBody<JobCreate>,
) -> Result<(StatusCode, Json<JobPublic>), ApiError> {
    let payload = Value::Object(body.payload);
    let kind = match JobKind::parse(&body.kind) {
        Some(kind) if kind.submittable_by(true) => kind,
        _ => {
            let submittable = JobKind::ALL.iter().copied().filter(|kind| kind.submittable_by(true));
            let msg = literal_message(submittable.map(JobKind::as_str));
            let issue = ValidationIssue::new("literal_error", &["body", "kind"], msg, Value::String(body.kind));
            return Err(ApiError::Validation(vec![issue]));
        }
    };
    if !kind.submittable_by(user.is_superuser) {
        return Err(ApiError::Forbidden("The user doesn't have enough privileges"));
    }
    if let Err(reason) = kind.validate(&payload) {
        let issue =
            ValidationIssue::new("value_error", &["body", "payload"], format!("Value error, {reason}"), payload);
        return Err(ApiError::Validation(vec![issue]));
    }
    let new = NewJob {
        kind: kind.as_str(),
        payload,
        owner_id: Some(user.id),
        priority: 0,
        run_at: body.run_at,
        max_attempts: body.max_attempts.unwrap_or(state.settings.worker.job_max_attempts),
        idempotency_key: body.idempotency_key,
    };
    let (job, _created) = shared_core::jobs::enqueue(&state.db, &new).await?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}

/// List jobs: your own, or everyone's for a superuser.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/",
    tag = "jobs",
    operation_id = "jobs-read_jobs",
    params(JobFilters, Paging),
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = JobsPublic),
        Invalid,
    )
)]
pub async fn read_jobs(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    params: QueryParams,
) -> Result<Json<JobsPublic>, ApiError> {
    let mut issues = Vec::new();
    let paging = Paging::from_params(&params, &mut issues);
    let status = params.0.get("status").and_then(|text| {
        let status = JobStatus::parse(text);
        if status.is_none() {
            let msg = literal_message(JobStatus::ALL.map(JobStatus::as_str));
            issues.push(ValidationIssue::new("enum", &["query", "status"], msg, Value::String(text.clone())));
        }
        status
    });
    let kind = params.0.get("kind").and_then(|text| {
        let kind = JobKind::parse(text);
        if kind.is_none() {
            let msg = literal_message(JobKind::ALL.iter().map(|kind| kind.as_str()));
            issues.push(ValidationIssue::new("enum", &["query", "kind"], msg, Value::String(text.clone())));
        }
        kind
    });
    if !issues.is_empty() {
        return Err(ApiError::Validation(issues));
    }
    let filter = JobFilter { owner_id: (!user.is_superuser).then_some(user.id), status, kind };
    let (jobs, count) = jobs::list(&state.db, &filter, paging.skip, paging.limit).await?;
    Ok(Json(JobsPublic { data: jobs.into_iter().map(Into::into).collect(), count }))
}

/// Pydantic's wording for a value outside a list: "Input should be 'a', 'b' or 'c'".
fn literal_message<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = values.into_iter().map(|v| format!("'{v}'")).collect();
    match quoted.split_last() {
        Some((last, [])) => format!("Input should be {last}"),
        Some((last, rest)) => format!("Input should be {} or {last}", rest.join(", ")),
        None => "Input should be nothing".to_owned(),
    }
}

/// `status` and `kind` filters, documented as the enums they are.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(dead_code, reason = "only its parameters are documented: the query is read by QueryParams")]
struct JobFilters {
    #[param(schema_with = crate::models::job_status_schema)]
    status: Option<String>,
    #[param(schema_with = crate::models::job_kind_schema)]
    kind: Option<String>,
}

/// The job, if `user` may see it.
async fn visible_job(state: &AppState, user: &User, id: Uuid) -> Result<Job, ApiError> {
    let job = jobs::find(&state.db, id).await?.ok_or(ApiError::NotFound("Job not found"))?;
    if !user.is_superuser && job.owner_id != Some(user.id) {
        return Err(ApiError::Forbidden("Not enough permissions"));
    }
    Ok(job)
}

/// Get a job.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}",
    tag = "jobs",
    operation_id = "jobs-read_job",
    params(("id" = Uuid, Path)),
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = JobPublic),
        JobLookup,
    )
)]
pub async fn read_job(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    PathId(id): PathId,
) -> Result<Json<JobPublic>, ApiError> {
    visible_job(&state, &user, id).await.map(|job| Json(job.into()))
}

/// Cancel a job that has not started.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/{id}/cancel",
    tag = "jobs",
    operation_id = "jobs-cancel_job",
    params(("id" = Uuid, Path)),
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "Cancelled", body = JobPublic),
        (status = 403, description = "Not the owner"),
        (status = 404, description = "No such job"),
        (status = 409, description = "Job is no longer queued"),
        Invalid,
    )
)]
pub async fn cancel_job(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    PathId(id): PathId,
) -> Result<Json<JobPublic>, ApiError> {
    visible_job(&state, &user, id).await?;
    let job = jobs::cancel(&state.db, id).await?.ok_or(ApiError::Conflict("Job is no longer queued"))?;
    Ok(Json(job.into()))
}

/// The job's output: for `items_export`, a CSV download.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}/result",
    tag = "jobs",
    operation_id = "jobs-read_job_result",
    params(("id" = Uuid, Path)),
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "The output", content_type = "text/csv", body = String),
        (status = 403, description = "Not the owner"),
        (status = 404, description = "No such job"),
        (status = 409, description = "The job has not succeeded (yet)"),
        Invalid,
    )
)]
pub async fn read_job_result(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let job = visible_job(&state, &user, id).await?;
    let (body, content_type) = jobs::result(&state.db, id).await?.ok_or(ApiError::Conflict("Job has not succeeded"))?;
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type).unwrap_or(HeaderValue::from_static("text/plain")),
    );
    if content_type.starts_with("text/csv") {
        let disposition = format!("attachment; filename=\"{}-{}.csv\"", job.kind, job.id);
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}
