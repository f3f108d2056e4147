//! `GET /dev/mail`: what the in-process mail sink received. Registered only outside production and
//! only when the sink is the configured transport.
use actix_web::{get, web};

use super::{CapturedMail, MailSink};

/// Lists the emails the development mail sink received, oldest first.
#[utoipa::path(tag = "dev", responses((status = 200, body = Vec<CapturedMail>)))]
#[get("/dev/mail")]
pub async fn list_mail(sink: web::Data<MailSink>) -> web::Json<Vec<CapturedMail>> {
    web::Json(sink.messages())
}
