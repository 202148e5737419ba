using System;
using BatchNorm.Tensors;

namespace BatchNorm.Tests;

/// <summary>
/// The README's usage snippet, compiled here. <see cref="ReadmeTests"/> checks that README.md contains exactly the lines
/// between the markers, and runs them.
/// </summary>
public static class ReadmeExample
{
    public static (BatchNormalization Layer, NdArray<float> Training, NdArray<float> Inference) Run()
    {
        // README-BEGIN
        // A batch of 4 samples with 3 channels (channels last: Keras' default axis=-1).
        var x = new NdArray<float>(
            [1f, 200f, -3f,
             2f, 210f, -1f,
             3f, 190f, -2f,
             4f, 200f,  0f],
            new NdShape(4, 3));

        var bn = new BatchNormalization(momentum: 0.9, epsilon: 1e-3);

        // Training mode: normalize with the batch statistics, update the moving statistics.
        NdArray<float> y = bn.Call(x, training: true);

        // Inference mode (the default): normalize with the moving statistics; no state changes.
        NdArray<float> z = bn.Call(x);

        Console.WriteLine($"y[0, :]         = {y[0, 0]:F4}, {y[0, 1]:F4}, {y[0, 2]:F4}");
        Console.WriteLine($"moving_mean     = {string.Join(", ", bn.MovingMean.ToArray())}");
        Console.WriteLine($"moving_variance = {string.Join(", ", bn.MovingVariance.ToArray())}");
        // README-END
        return (bn, y, z);
    }

    public static (BatchNormalization<double> Layer, System.Numerics.Tensors.Tensor<float> Tensor, BatchNormalizationGradients<float> Gradients, BatchNormalization<float> Copy) More(
        BatchNormalization bn, NdArray<float> x)
    {
        // README-MORE-BEGIN
        // Channels first (NCHW), double precision, no beta, Keras-style string arguments.
        var bn2 = new BatchNormalization<double>(axis: 1, center: false, gammaRegularizer: "l2", gammaConstraint: "non_neg");

        // No allocation: write into your own buffer, or in place.
        bn.Call(x, x, training: false);

        // System.Numerics.Tensors: zero-copy in both directions.
        System.Numerics.Tensors.Tensor<float> t = x.ToTensor();
        bn.Call(t, t);

        // Porting weights: Keras order is gamma, beta, moving_mean, moving_variance (absent ones skipped).
        bn.SetWeights([1f, 1f, 1f], [0f, 0f, 0f], [2.5f, 200f, -1.5f], [1.25f, 50f, 1.25f]);

        // Training: forward in training mode, then the gradients for a loss L given dL/dy.
        NdArray<float> output = bn.Call(x, training: true);
        var dy = new NdArray<float>(new float[x.Length], x.Shape);
        BatchNormalizationGradients<float> grads = bn.Backward(dy);   // InputGradient, GammaGradient, BetaGradient
        System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(grads.GammaGradient!.ReadOnlySpan, -0.1f, bn.Gamma!.Span, bn.Gamma.Span);
        bn.ApplyConstraints();                                        // as Keras' optimizer does after each step

        // Keras get_config() JSON, both ways (also reads a layer entry of a Keras model JSON).
        string json = bn.GetConfig().ToJson();
        BatchNormalization<float> copy = BatchNormalization<float>.FromConfig(json);
        // README-MORE-END
        _ = output;
        return (bn2, t, grads, copy);
    }
}
