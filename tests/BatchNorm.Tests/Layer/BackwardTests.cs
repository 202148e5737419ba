using System;
using System.Collections.Generic;
using System.Linq;
using System.Numerics;
using BatchNorm.Kernels;
using BatchNorm.Regularizers;
using BatchNorm.Tensors;
using BatchNorm.Tests.Reference;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests.Layer;

/// <summary>Gradients against central finite differences of the float64 reference forward pass, loss = sum(y * w).</summary>
public class BackwardTests
{
    public sealed record Case(int[] Shape, int Axis, bool Center = true, bool Scale = true, bool Training = true,
        double Offset = 0.5, double Spread = 1.5, int Seed = 1, bool Trainable = true)
    {
        public override string ToString() =>
            $"[{string.Join(", ", Shape)}] axis {Axis} center {Center} scale {Scale} training {Training} offset {Offset} spread {Spread}";
    }

    public static IEnumerable<object[]> Layouts()
    {
        int[][] shapes = [[6, 5], [3, 4, 5], [2, 3, 4, 5], [2, 2, 3, 2, 3]];
        foreach (int[] shape in shapes)
        {
            for (int axis = 0; axis < shape.Length; axis++)
            {
                yield return [shape, axis];
            }

            yield return [shape, -1];
        }
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Training_gradients_match_finite_differences_in_every_layout(int[] shape, int axis)
    {
        foreach (bool center in new[] { true, false })
        {
            foreach (bool scale in new[] { true, false })
            {
                Check<double>(new Case(shape, axis, center, scale), 1e-7);
                Check<float>(new Case(shape, axis, center, scale), 2e-4);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Inference_gradients_are_the_affine_ones(int[] shape, int axis)
    {
        Check<double>(new Case(shape, axis, Training: false), 1e-7);
        Check<float>(new Case(shape, axis, Training: false), 2e-4);
        Check<double>(new Case(shape, axis, Training: true, Trainable: false), 1e-7);
    }

    [Fact]
    public void Batch_sizes_one_two_and_larger_and_long_rows_match_finite_differences()
    {
        foreach (int[] shape in new[] { new[] { 1, 7 }, new[] { 2, 7 }, new[] { 40, 7 }, new[] { 1, 3, 20 }, new[] { 2, 33, 3 }, new[] { 3, 4, 70 } })
        {
            Check<double>(new Case(shape, 1), 1e-7);
            Check<float>(new Case(shape, 1), 2e-4);
        }
    }

    /// <summary>
    /// More channels than the layer keeps on the stack (128): its centre and gradient coefficients are then rented and
    /// laid whole pages apart at a page offset chosen from dx's address, and the gradient sums' scratch likewise from
    /// x's and dy's. C = 300 is less than a page of either type, C = 1100 float more than one.
    /// </summary>
    [Fact]
    public void Rows_wider_than_the_stack_coefficients_match_finite_differences()
    {
        foreach (int[] shape in new[] { new[] { 4, 300 }, new[] { 3, 1100 } })
        {
            Check<double>(new Case(shape, -1), 1e-7);
            Check<float>(new Case(shape, -1), 2e-4);
        }

        Check<double>(new Case([2, 300, 3], 1), 1e-7);
    }

    [Theory]
    [InlineData(1e4, 1)]
    [InlineData(1, 1e-3)]
    [InlineData(-300, 20)]
    public void Hard_data_gradients_match_finite_differences(double offset, double spread)
    {
        Check<double>(new Case([16, 5], -1, Offset: offset, Spread: spread), 1e-6);
        Check<double>(new Case([2, 5, 9], 1, Offset: offset, Spread: spread), 1e-6);
        Check<float>(new Case([16, 5], -1, Offset: offset, Spread: spread), 1e-3);
        Check<float>(new Case([2, 5, 9], 1, Offset: offset, Spread: spread), 1e-3);
    }

    [Fact]
    public void The_no_allocation_overloads_match_and_work_in_place()
    {
        var random = new Random(5);
        var layer = new BatchNormalization<double>(axis: 1);
        var x = new NdArray<double>(Enumerable.Range(0, 60).Select(_ => random.NextDouble()).ToArray(), new NdShape(3, 4, 5));
        var dy = new NdArray<double>(Enumerable.Range(0, 60).Select(_ => random.NextDouble() - 0.5).ToArray(), x.Shape);
        layer.Call(x, training: true);
        BatchNormalizationGradients<double> expected = layer.Backward(dy);

        var dgamma = new double[4];
        var dbeta = new double[4];
        double[] inPlace = dy.ToArray();
        layer.Backward(inPlace, inPlace, dgamma, dbeta);
        inPlace.Should().Equal(expected.InputGradient.ToArray());
        dgamma.Should().Equal(expected.GammaGradient!.ToArray());
        dbeta.Should().Equal(expected.BetaGradient!.ToArray());

        // A span-based forward needs the input passed to Backward.
        var y = new double[60];
        layer.Call(x.ReadOnlySpan, x.Shape, y, training: true);
        var dx = new double[60];
        layer.Backward(x.ReadOnlySpan, x.Shape, dy.ReadOnlySpan, dx, dgamma, dbeta);
        dx.Should().Equal(expected.InputGradient.ToArray());
    }

    [Fact]
    public void Regularizer_gradients_are_added_only_when_asked_and_say_so()
    {
        var layer = new BatchNormalization<double>(gammaRegularizer: new L2(0.3), betaRegularizer: new L1L2(0.2, 0.1));
        var x = new NdArray<double>([1, 2, 3, 5, 8, 13], new NdShape(3, 2));
        layer.Call(x, training: true);
        layer.SetWeights([1.5, -0.5], [0.0, -2.0], [0, 0], [1, 1]);
        var dy = new NdArray<double>([0.1, -0.2, 0.3, 0.4, -0.5, 0.6], x.Shape);
        layer.Call(x, training: true);

        BatchNormalizationGradients<double> data = layer.Backward(dy, includeRegularization: false);
        BatchNormalizationGradients<double> total = layer.Backward(dy);

        data.IncludesRegularization.Should().BeFalse();
        total.IncludesRegularization.Should().BeTrue();
        // d/dgamma of 0.3 * sum(gamma^2) is 0.6 * gamma; d/dbeta of 0.2 |beta| + 0.1 beta^2 is 0.2 sign(beta) + 0.2 beta.
        total.GammaGradient![0].Should().BeApproximately(data.GammaGradient![0] + (0.6 * 1.5), 1e-12);
        total.GammaGradient![1].Should().BeApproximately(data.GammaGradient![1] + (0.6 * -0.5), 1e-12);
        total.BetaGradient![0].Should().BeApproximately(data.BetaGradient![0], 1e-12, "sign(0) = 0");
        total.BetaGradient![1].Should().BeApproximately(data.BetaGradient![1] + (0.2 * -1) + (0.2 * -2.0), 1e-12);
        total.InputGradient.ToArray().Should().Equal(data.InputGradient.ToArray());
    }

    [Fact]
    public void Regularizer_gradients_are_added_on_the_small_batch_path_too()
    {
        // [8, 16] takes the small backward routine (its own method since the fortieth session) at every width.
        var shape = new NdShape(8, 16);
        BatchNormKernels.IsSmallBackward<double>(ChannelLayout.FromShape(shape.Dimensions, 1), VectorWidths.Best).Should().BeTrue();
        var random = new Random(40);
        double[] gamma = Enumerable.Range(0, 16).Select(_ => random.NextDouble() - 0.5).ToArray();
        double[] beta = Enumerable.Range(0, 16).Select(c => c % 3 == 0 ? 0.0 : random.NextDouble() - 0.5).ToArray();
        var layer = new BatchNormalization<double>(gammaRegularizer: new L2(0.3), betaRegularizer: new L1L2(0.2, 0.1));
        var x = new NdArray<double>(Enumerable.Range(0, 128).Select(_ => random.NextDouble()).ToArray(), shape);
        layer.Build(shape);
        layer.SetWeights(gamma, beta, new double[16], Enumerable.Repeat(1.0, 16).ToArray());
        layer.Call(x, training: true);
        var dy = new NdArray<double>(Enumerable.Range(0, 128).Select(_ => random.NextDouble() - 0.5).ToArray(), shape);

        BatchNormalizationGradients<double> data = layer.Backward(dy, includeRegularization: false);
        BatchNormalizationGradients<double> total = layer.Backward(dy);

        for (int c = 0; c < 16; c++)
        {
            // d/dgamma of 0.3 * sum(gamma^2) is 0.6 * gamma; d/dbeta of 0.2 |beta| + 0.1 beta^2 is 0.2 sign(beta) + 0.2 beta.
            total.GammaGradient![c].Should().BeApproximately(data.GammaGradient![c] + (0.6 * gamma[c]), 1e-12);
            total.BetaGradient![c].Should().BeApproximately(data.BetaGradient![c] + (0.2 * Math.Sign(beta[c])) + (0.2 * beta[c]), 1e-12);
        }

        total.InputGradient.ToArray().Should().Equal(data.InputGradient.ToArray());
    }

    [Fact]
    public void A_small_unmasked_training_call_after_a_masked_one_is_differentiated_without_the_mask()
    {
        // The masked call takes the general training path and keeps its mask for the backward; the unmasked one after it
        // takes the small routine, and the backward must then see no mask, or it treats the rows the old mask left out as
        // masked.
        const int Rows = 8, Channels = 16;
        var shape = new NdShape(Rows, Channels);
        var random = new Random(41);
        double[] xs = Enumerable.Range(0, Rows * Channels).Select(_ => random.NextDouble() * 4).ToArray();
        double[] g = Enumerable.Range(0, Rows * Channels).Select(_ => random.NextDouble() - 0.5).ToArray();
        var layer = new BatchNormalization<double>();
        var x = new NdArray<double>(xs, shape);
        layer.Call(x, training: true, mask: new NdArray<bool>(Enumerable.Range(0, Rows).Select(r => r % 3 != 0).ToArray(), new NdShape(Rows)));
        layer.Call(x, training: true);

        BatchNormalizationGradients<double> gradients = layer.Backward(new NdArray<double>(g, shape));

        for (int c = 0; c < Channels; c++)
        {
            // The float64 formulas with gamma = 1: dx = (dy - dbeta / n - xhat dgamma / n) / sqrt(var + eps).
            double mean = 0, variance = 0, dbeta = 0, dgamma = 0;
            for (int r = 0; r < Rows; r++)
            {
                mean += xs[(r * Channels) + c] / Rows;
            }

            for (int r = 0; r < Rows; r++)
            {
                double d = xs[(r * Channels) + c] - mean;
                variance += d * d / Rows;
            }

            double inverse = 1 / Math.Sqrt(variance + layer.Epsilon);
            for (int r = 0; r < Rows; r++)
            {
                dbeta += g[(r * Channels) + c];
                dgamma += g[(r * Channels) + c] * (xs[(r * Channels) + c] - mean) * inverse;
            }

            gradients.BetaGradient![c].Should().BeApproximately(dbeta, 1e-12);
            gradients.GammaGradient![c].Should().BeApproximately(dgamma, 1e-12);
            for (int r = 0; r < Rows; r++)
            {
                int i = (r * Channels) + c;
                double xhat = (xs[i] - mean) * inverse;
                gradients.InputGradient[r, c].Should().BeApproximately(inverse * (g[i] - (dbeta / Rows) - (xhat * dgamma / Rows)), 1e-11, $"dx[{r}, {c}]");
            }
        }
    }

    [Fact]
    public void Backward_without_a_forward_pass_or_with_a_mismatched_shape_is_a_clear_error()
    {
        var layer = new BatchNormalization();
        Action none = () => layer.Backward(new NdArray<float>(new NdShape(2, 3)));
        none.Should().Throw<InvalidOperationException>().WithMessage("*preceding Call*");

        var x = new NdArray<float>([1f, 2f, 3f, 4f, 5f, 7f], new NdShape(2, 3));
        layer.Call(x, training: true);
        Action shape = () => layer.Backward(new NdArray<float>(new NdShape(3, 2)));
        shape.Should().Throw<ArgumentException>().Where(e => e.ParamName == "outputGradient" && e.Message.Contains("[2, 3]"));
        Action lengths = () => layer.Backward(new float[6], new float[6], new float[2], new float[3]);
        lengths.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("gammaGradient");

        layer.Call(x, x, training: true);
        Action inPlace = () => layer.Backward(new NdArray<float>(new NdShape(2, 3)));
        inPlace.Should().Throw<InvalidOperationException>().WithMessage("*in place*");

        var noBeta = new BatchNormalization(center: false);
        noBeta.Call(x, training: true);
        Action beta = () => noBeta.Backward(new float[6], new float[6], new float[3], new float[3]);
        beta.Should().Throw<ArgumentException>().Where(e => e.ParamName == "betaGradient" && e.Message.Contains("center=false"));
        noBeta.Backward(new NdArray<float>(new NdShape(2, 3))).BetaGradient.Should().BeNull();
    }

    [Fact]
    public void Backward_argument_errors_name_the_parameter_and_the_expected_value()
    {
        var x = new NdArray<float>([1f, 2f, 3f, 4f, 5f, 7f], new NdShape(2, 3));
        var layer = new BatchNormalization();
        layer.Call(x, training: true);

        void Expect(Action call, string paramName, string message) =>
            call.Should().Throw<ArgumentException>().Where(e => e.ParamName == paramName && e.Message.StartsWith(message, StringComparison.Ordinal));

        Expect(() => layer.Backward(new float[5], new float[6], new float[3], new float[3]), "outputGradient", "Expected 6 elements, got 5.");
        Expect(() => layer.Backward(new float[6], new float[7], new float[3], new float[3]), "inputGradient", "Expected 6 elements, got 7.");
        Expect(() => layer.Backward(new float[6], new float[6], new float[2], new float[3]), "gammaGradient", "Expected 3 elements (one per channel), got 2.");
        Expect(() => layer.Backward(new float[6], new float[6], new float[3], new float[4]), "betaGradient", "Expected 3 elements (one per channel), got 4.");
        Expect(
            () => layer.Backward(x.ReadOnlySpan, new NdShape(3, 2), new float[6], new float[6], new float[3], new float[3]),
            "outputGradient",
            "Expected the shape of the last call's input [2, 3], got [3, 2] for an input of shape [3, 2].");

        layer.Call(x, training: false);
        Expect(() => layer.Backward(new NdArray<float>(new NdShape(3, 2))), "outputGradient", "Expected the shape of the last call's input [2, 3], got [3, 2].");

        var noScale = new BatchNormalization(scale: false);
        noScale.Call(x, training: true);
        Expect(
            () => noScale.Backward(new float[6], new float[6], new float[3], new float[3]),
            "gammaGradient",
            "Expected an empty span: the layer has scale=false, so there is no such weight.");
    }

    internal static void Check<T>(Case k, double tolerance)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var random = new Random(k.Seed);
        int n = k.Shape.Aggregate(1, (a, b) => a * b);
        int axis = ReferenceBatchNorm.NormalizeAxis(k.Axis, k.Shape.Length);
        int channels = k.Shape[axis];
        double[] x = LayerHarness.RoundTrip<T>(Enumerable.Range(0, n).Select(i => k.Offset + (k.Spread * ((2 * random.NextDouble()) - 1)) + (0.1 * k.Spread * ReferenceBatchNorm.ChannelOf(i, k.Shape, axis))).ToArray());
        double[] w = LayerHarness.RoundTrip<T>(Enumerable.Range(0, n).Select(_ => (2 * random.NextDouble()) - 1).ToArray());
        double[]? gamma = k.Scale ? LayerHarness.RoundTrip<T>(Enumerable.Range(0, channels).Select(_ => 0.5 + random.NextDouble()).ToArray()) : null;
        double[]? beta = k.Center ? LayerHarness.RoundTrip<T>(Enumerable.Range(0, channels).Select(_ => random.NextDouble() - 0.5).ToArray()) : null;
        double[] movingMean = LayerHarness.RoundTrip<T>(Enumerable.Range(0, channels).Select(_ => k.Offset + random.NextDouble() - 0.5).ToArray());
        double[] movingVariance = LayerHarness.RoundTrip<T>(Enumerable.Range(0, channels).Select(_ => k.Spread * k.Spread * (0.5 + random.NextDouble())).ToArray());

        var layer = new BatchNormalization<T>(k.Axis, momentum: 0.5, center: k.Center, scale: k.Scale, trainable: k.Trainable);
        layer.Build(k.Shape);
        var weights = new List<T[]>();
        if (gamma is not null)
        {
            weights.Add(Tolerance.FromDouble<T>(gamma));
        }

        if (beta is not null)
        {
            weights.Add(Tolerance.FromDouble<T>(beta));
        }

        weights.Add(Tolerance.FromDouble<T>(movingMean));
        weights.Add(Tolerance.FromDouble<T>(movingVariance));
        layer.SetWeights([.. weights]);

        bool batch = k.Training && k.Trainable;
        var reference = new ReferenceForward(k.Shape, k.Axis, 1e-3)
        {
            Fixed = batch ? null : (movingMean, movingVariance),
            XStep = 1e-4 * k.Spread,
        };

        layer.Call(new NdArray<T>(Tolerance.FromDouble<T>(x), k.Shape), k.Training);
        BatchNormalizationGradients<T> grads = layer.Backward(new NdArray<T>(Tolerance.FromDouble<T>(w), k.Shape));
        var (dx, dgamma, dbeta) = reference.FiniteDifferences(x, gamma, beta, w);

        AssertGradients(grads, dx, dgamma, dbeta, tolerance, $"{typeof(T).Name} {k}");
    }

    internal static void AssertGradients<T>(BatchNormalizationGradients<T> grads, double[] dx, double[]? dgamma, double[]? dbeta, double tolerance, string what)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        double dxScale = dx.Select(Math.Abs).Max() + 1e-12;
        Tolerance.ShouldBeClose(Tolerance.ToDouble<T>(grads.InputGradient.ReadOnlySpan), dx, Enumerable.Repeat(dxScale, dx.Length).ToArray(), tolerance, 0, "dx of " + what);
        if (dgamma is null)
        {
            grads.GammaGradient.Should().BeNull();
        }
        else
        {
            double scale = dgamma.Select(Math.Abs).Max() + dxScale;
            Tolerance.ShouldBeClose(Tolerance.ToDouble<T>(grads.GammaGradient!.ReadOnlySpan), dgamma, Enumerable.Repeat(scale, dgamma.Length).ToArray(), tolerance, 0, "dgamma of " + what);
        }

        if (dbeta is null)
        {
            grads.BetaGradient.Should().BeNull();
        }
        else
        {
            double scale = dbeta.Select(Math.Abs).Max() + dxScale;
            Tolerance.ShouldBeClose(Tolerance.ToDouble<T>(grads.BetaGradient!.ReadOnlySpan), dbeta, Enumerable.Repeat(scale, dbeta.Length).ToArray(), tolerance, 0, "dbeta of " + what);
        }
    }
}
