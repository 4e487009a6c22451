//! The routing middleware: classify + decide in `call`, attach the route,
//! call the inner service; a denial never reaches it.

mod decide;
mod future;
mod layer;
mod service;

pub use future::RoutingFuture;
pub use layer::RoutingLayer;
pub use service::RoutingService;
