"""What ships: complexity the NeSsi way, int8 quantization, ONNX export, the submission file."""
