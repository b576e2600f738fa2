//! Route tables: each router is built from one list of (method, path, handler), and the same
//! lists tell the OpenAPI test which routes the document must cover.

use axum::handler::Handler;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

/// The HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
}

impl Verb {
    /// Lower case, as OpenAPI's path items name operations.
    pub fn name(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Put => "put",
            Verb::Delete => "delete",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

/// One route.
pub struct Route<S> {
    /// Method.
    pub verb: Verb,
    /// Path, with `{param}` segments as axum and OpenAPI write them.
    pub path: &'static str,
    handler: MethodRouter<S>,
}

/// `handler` for `verb` on `path`.
pub fn route<H, T, S>(verb: Verb, path: &'static str, handler: H) -> Route<S>
where
    H: Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    Route {
        verb,
        path,
        handler: on(verb.filter(), handler),
    }
}

/// A router serving `routes` (methods on one path merge).
pub fn router<S: Clone + Send + Sync + 'static>(routes: Vec<Route<S>>) -> Router<S> {
    routes
        .into_iter()
        .fold(Router::new(), |r, x| r.route(x.path, x.handler))
}

/// The (method, path) pairs of `routes`.
pub fn listed<S>(routes: Vec<Route<S>>) -> Vec<(Verb, &'static str)> {
    routes.into_iter().map(|r| (r.verb, r.path)).collect()
}
