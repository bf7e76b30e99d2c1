namespace TorchSharp;

public static partial class torch
{
    public static partial class nn
    {
        /// <summary>
        /// Stateless functions of tensors (TorchSharp's <c>torch.nn.functional</c>, usually imported as
        /// <c>using F = TorchSharp.torch.nn.functional;</c>): activations, softmax, normalisation and losses.
        /// Each one forwards to the tensor op that holds its forward and backward.
        /// </summary>
        public static partial class functional
        {
            // ------------------------------------------------------------------ activations

            /// <summary>GELU, exact erf form (PyTorch's default): ½x(1 + erf(x/√2)).</summary>
            public static Tensor gelu(Tensor x) => x.gelu();

            /// <summary>GELU; with <paramref name="inplace"/> the result is written into <paramref name="x"/>.</summary>
            public static Tensor gelu(Tensor x, bool inplace) => inplace ? x.gelu_() : x.gelu();

            /// <summary>log σ(x), stable for any x.</summary>
            public static Tensor logsigmoid(Tensor x) => x.log_sigmoid();

            /// <summary>σ(x) = 1/(1 + e⁻ˣ).</summary>
            public static Tensor sigmoid(Tensor x, bool inplace = false) => inplace ? x.OverwriteWith("sigmoid_", x.sigmoid) : x.sigmoid();

            /// <summary>max(x, 0).</summary>
            public static Tensor relu(Tensor x, bool inplace = false) => inplace ? x.OverwriteWith("relu_", x.relu) : x.relu();

            /// <summary>tanh x.</summary>
            public static Tensor tanh(Tensor x, bool inplace = false) => inplace ? x.OverwriteWith("tanh_", x.tanh) : x.tanh();

            /// <summary>log(1 + e^(βx))/β, linear above <paramref name="threshold"/>.</summary>
            public static Tensor softplus(Tensor x, double beta = 1.0, double threshold = 20.0) => x.softplus(beta, threshold);

            /// <summary>SiLU (swish): x·σ(x).</summary>
            public static Tensor silu(Tensor x, bool inplace = false) => inplace ? x.OverwriteWith("silu_", x.silu) : x.silu();
        }
    }
}
