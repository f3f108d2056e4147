//! Route guards: middleware declared on a route (`wrap = "RequireMfa::within(…)"`) that lets the
//! request through or answers it with its refusal. A layer writes only the check
//! ([`RouteGuard`]) and names its guard once with [`route_guard!`]; the actix plumbing is here.
//!
//! A refusal is the answer, not an error: the app's outer middleware (security headers, metrics,
//! request ids) sees it as a response like any other.
use std::{
    future::{Future, Ready, ready},
    rc::Rc,
};

use actix_web::{
    Error, HttpRequest, ResponseError,
    body::EitherBody,
    dev::{Service, ServiceRequest, ServiceResponse, forward_ready},
};
use futures_util::future::LocalBoxFuture;

/// What a route guard checks. `Copy`: a guard is its settings (a policy, an action).
pub trait RouteGuard: Copy + 'static {
    /// The answer when the check fails (a problem+json 401, 403 or 404).
    type Refusal: ResponseError + 'static;

    /// `Ok` lets the request through.
    fn check(self, req: &HttpRequest) -> impl Future<Output = Result<(), Self::Refusal>>;
}

/// The middleware of guard `G` around the route's service `S`.
pub struct GuardMiddleware<S, G> {
    service: Rc<S>,
    guard: G,
}

impl<S, G> GuardMiddleware<S, G> {
    /// For [`route_guard!`]'s `Transform`.
    pub fn transform(guard: G, service: S) -> Ready<Result<Self, ()>> {
        ready(Ok(Self {
            service: Rc::new(service),
            guard,
        }))
    }
}

impl<S, B, G> Service<ServiceRequest> for GuardMiddleware<S, G>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
    G: RouteGuard,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let guard = self.guard;
        Box::pin(async move {
            let request = req.request().clone();
            match guard.check(&request).await {
                Ok(()) => Ok(service.call(req).await?.map_into_left_body()),
                Err(refusal) => Ok(req
                    .into_response(refusal.error_response())
                    .map_into_right_body()),
            }
        })
    }
}

/// Makes a [`RouteGuard`] usable in `wrap = "…"`: implements actix's `Transform` for it.
macro_rules! route_guard {
    ($guard:ty) => {
        impl<S, B> ::actix_web::dev::Transform<S, ::actix_web::dev::ServiceRequest> for $guard
        where
            S: ::actix_web::dev::Service<
                    ::actix_web::dev::ServiceRequest,
                    Response = ::actix_web::dev::ServiceResponse<B>,
                    Error = ::actix_web::Error,
                > + 'static,
            B: 'static,
        {
            type Response = ::actix_web::dev::ServiceResponse<::actix_web::body::EitherBody<B>>;
            type Error = ::actix_web::Error;
            type Transform = $crate::http::guard::GuardMiddleware<S, $guard>;
            type InitError = ();
            type Future = ::std::future::Ready<Result<Self::Transform, ()>>;

            fn new_transform(&self, service: S) -> Self::Future {
                $crate::http::guard::GuardMiddleware::transform(*self, service)
            }
        }
    };
}
pub(crate) use route_guard;
