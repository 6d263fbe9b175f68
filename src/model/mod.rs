//! Models: the backbones ([`arch`]: which tensors), ResNet50 inference with BN folded into the
//! convs ([`resnet50`]), and the trainable network of every backbone ([`net`]).

pub mod arch;
pub mod init;
pub mod net;
pub mod parity;
pub mod resnet50;
