//! `skinengine serve` over real HTTP on 127.0.0.1 (a raw std TcpStream client, so every byte a
//! bad client might send can be sent): real JPEG/PNG images classified exactly as `infer`
//! classifies the same files, heat maps, every kind of bad input with its status and message,
//! slow clients, concurrency with dynamic batching, a full queue, metrics, graceful shutdown
//! (in process and by SIGTERM to the binary). The model is a random-init ResNet18 with a linear
//! head at 32x32 (`testing::tiny_model`): a forward pass takes milliseconds on 2 cores.
//!
//! One test binary (the fixture is built once), one file per topic.

mod bad_input;
mod classify;
mod common;
mod concurrency;
mod lifecycle;
mod queue;
mod slow_clients;
