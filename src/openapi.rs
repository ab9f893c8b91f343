//! The service's OpenAPI 3.1 document, made from the handlers themselves. Every router
//! registers its handlers through [`Documented::routes`], with what `utoipa_axum::routes!`
//! collected from their `#[utoipa::path]` annotations: the path a handler is served at is
//! the path its annotation documents, so no route is served undocumented or documented
//! unserved. The whole document is assembled in `crate::app` (`app::openapi`), served at
//! `{prefix}openapi.json`, printed by `otter-service openapi` and kept in the repository
//! as docs/openapi.json (a test fails when that copy differs from the code's).

use axum::Router;
use axum::routing::MethodRouter;
use utoipa::openapi::RefOr;
use utoipa::openapi::path::Paths;
use utoipa::openapi::schema::Schema;
use utoipa_axum::router::UtoipaMethodRouter;

/// Schemas a set of routes refers to.
pub type Schemas = Vec<(String, RefOr<Schema>)>;

/// A router whose every route is documented.
pub struct Documented<S> {
    prefix: String,
    router: Router<S>,
    paths: Paths,
    schemas: Schemas,
}

/// `prefix` (ending in `/` or empty) joined with an annotated path (`/...`).
fn join(prefix: &str, path: &str) -> String {
    format!("{}{}", prefix.trim_end_matches('/'), path)
}

impl<S> Documented<S>
where
    S: Clone + Send + Sync + 'static,
{
    /// Routes under `prefix` (e.g. `/services/otter_grade/`; empty for the server's root).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
            router: Router::new(),
            paths: Paths::new(),
            schemas: Vec::new(),
        }
    }

    /// Serve the handlers `routes!` collected (one path per call) at the prefix joined with
    /// their annotated path, and document them there.
    pub fn routes(mut self, (schemas, paths, method_router): UtoipaMethodRouter<S>) -> Self {
        assert_eq!(paths.paths.len(), 1, "one path per routes!() call");
        for (path, item) in paths.paths {
            let full = join(&self.prefix, &path);
            self.router = self.router.route(&full, method_router.clone());
            match self.paths.paths.get_mut(&full) {
                Some(existing) => existing.merge_operations(item),
                None => {
                    self.paths.paths.insert(full, item);
                }
            }
        }
        self.schemas.extend(schemas);
        self
    }

    /// Serve `method_router` at `path` too, undocumented: only for another spelling of a
    /// documented path (the prefix without its trailing slash, which JupyterHub's proxy
    /// may send).
    pub fn alias(mut self, path: &str, method_router: MethodRouter<S>) -> Self {
        self.router = self.router.route(path, method_router);
        self
    }

    /// Add another documented router's routes.
    pub fn merge(mut self, other: Documented<S>) -> Self {
        self.router = self.router.merge(other.router);
        self.paths.merge(other.paths);
        self.schemas.extend(other.schemas);
        self
    }

    /// The router and what documents it.
    pub fn into_parts(self) -> (Router<S>, Paths, Schemas) {
        (self.router, self.paths, self.schemas)
    }
}
