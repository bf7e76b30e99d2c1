using static TorchSharp.torch;

namespace TorchSharp.Modules;

/// <summary>
/// A lookup table of <c>num_embeddings</c> vectors of size <c>embedding_dims</c> (TorchSharp's
/// <c>Embedding</c>): ids of any shape [*] (int64) give vectors of shape [*, embedding_dims].
/// </summary>
/// <remarks>
/// y[…, :] = W[id, :], i.e. <c>W.index_select(0, ids.flatten())</c> reshaped. The gradient of W adds
/// ∂L/∂y into the rows that were looked up (a row used twice receives the sum). W is initialised from
/// N(0, 1) with the default generator, as in PyTorch.
/// </remarks>
public sealed class Embedding : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = nameof(weight))] private Parameter? _weight;

    internal Embedding(long num_embeddings, long embedding_dims, Device? device, ScalarType? dtype) : base(nameof(Embedding))
    {
        CheckDevice(device);
        if (num_embeddings <= 0 || embedding_dims <= 0)
            throw new ArgumentException($"Embedding: sizes must be positive, got num_embeddings {num_embeddings}, embedding_dims {embedding_dims}");
        weight = new Parameter(empty(num_embeddings, embedding_dims, dtype));
        reset_parameters();
    }

    internal Embedding(Parameter weight) : base(nameof(Embedding))
    {
        if (weight.Rank != 2) throw new ArgumentException($"Embedding: the weight must be 2-D [num_embeddings, embedding_dims], got shape {weight.ShapeString}");
        this.weight = weight;
    }

    /// <summary>Redraws W from N(0, 1).</summary>
    public void reset_parameters() => nn.init.normal_(weight);

    public override Tensor forward(Tensor input)
    {
        if (input._dtype != ScalarType.Int64)
            throw new ArgumentException($"Embedding: the input must hold int64 ids, got {input._dtype} (shape {input.ShapeString})");
        var w = weight;
        var shape = new long[input.Rank + 1];
        Array.Copy(input._shape, shape, input.Rank);
        shape[^1] = w._shape[1];
        return w.index_select(0, input.flatten()).reshape(shape);
    }

    public Parameter weight
    {
        get => _weight!;
        set { _weight = value; ConditionallyRegisterParameter(nameof(weight), value); }
    }
}
