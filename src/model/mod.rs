//! Models: the ResNet50 backbone (torchvision weights, inference with BN folded into the convs).

pub mod init;
pub mod parity;
pub mod resnet50;
