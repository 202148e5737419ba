using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using BatchNorm.Tensors;
using BatchNorm.Tests.Reference;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests.Golden;

/// <summary>Gradients from tfjs autodiff (tf.variableGrads of sum(y * w) on a training-mode call), see Golden/generator.</summary>
public class KerasGradientGoldenTests
{
    private static readonly Lazy<Dictionary<string, GradientCase>> s_cases = new(Load);

    public static IEnumerable<object[]> CaseNames() => s_cases.Value.Keys.Select(name => new object[] { name });

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Backward_reproduces_the_keras_autodiff_gradients(string name)
    {
        GradientCase g = s_cases.Value[name];
        int n = g.Shape.Aggregate(1, (a, b) => a * b);
        int channels = g.Shape[g.Axis < 0 ? g.Axis + g.Shape.Length : g.Axis];
        var layer = new BatchNormalization(g.Axis, epsilon: g.Epsilon, center: g.Center, scale: g.Scale);
        layer.Build(g.Shape);
        var weights = new List<float[]>();
        if (g.Gamma is not null)
        {
            weights.Add(g.Gamma);
        }

        if (g.Beta is not null)
        {
            weights.Add(g.Beta);
        }

        weights.Add(new float[channels]);
        weights.Add(Enumerable.Repeat(1f, channels).ToArray());
        layer.SetWeights([.. weights]);

        NdArray<float> y = layer.Call(new NdArray<float>(g.Input, g.Shape), training: true);
        BatchNormalizationGradients<float> grads = layer.Backward(new NdArray<float>(g.OutputWeights, g.Shape));

        // Float32 on both sides: a tolerance growing like sqrt(n) ulps of the largest gradient.
        double k = (32 + (4 * Math.Sqrt(n))) * Tolerance.Epsilon<float>();
        double loss = 0;
        for (int i = 0; i < n; i++)
        {
            loss += y.ReadOnlySpan[i] * (double)g.OutputWeights[i];
        }

        loss.Should().BeApproximately(g.Loss, k * (1 + g.OutputWeights.Zip(y.ToArray(), (w, v) => Math.Abs(w * v)).Sum()), "the forward loss");
        // dx = a (dy - mean(dy) - xhat mean(dy xhat)) cancels terms of size |a dy|, a = gamma / sqrt(var + eps): that,
        // not |dx|, is the scale of its rounding (for a batch of one, dx is exactly 0).
        var (_, variance) = ReferenceBatchNorm.Moments(Tolerance.ToDouble<float>(g.Input), g.Shape, g.Axis);
        double termScale = 0;
        for (int i = 0; i < n; i++)
        {
            int c = ReferenceBatchNorm.ChannelOf(i, g.Shape, g.Axis < 0 ? g.Axis + g.Shape.Length : g.Axis);
            double gamma = g.Gamma is null ? 1 : g.Gamma[c];
            termScale = Math.Max(termScale, Math.Abs(gamma * g.OutputWeights[i] / Math.Sqrt(variance[c] + g.Epsilon)));
        }

        Compare(grads.InputGradient.ToArray(), g.InputGradient, k, "dx of " + name, termScale);
        if (g.Scale)
        {
            Compare(grads.GammaGradient!.ToArray(), g.GammaGradient!, k * Math.Sqrt(n / channels), "dgamma of " + name);
        }

        if (g.Center)
        {
            Compare(grads.BetaGradient!.ToArray(), g.BetaGradient!, k * Math.Sqrt(n / channels), "dbeta of " + name);
        }
    }

    private static void Compare(float[] actual, float[] expected, double k, string what, double termScale = 0)
    {
        double scale = expected.Select(v => Math.Abs((double)v)).Max() + termScale + 1e-6;
        Tolerance.ShouldBeClose(Tolerance.ToDouble<float>(actual), Tolerance.ToDouble<float>(expected), Enumerable.Repeat(scale, expected.Length).ToArray(), k, 0, what);
    }

    private static Dictionary<string, GradientCase> Load()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "Golden", "data", "keras_gradients.json");
        GradientFile file = JsonSerializer.Deserialize<GradientFile>(File.ReadAllText(path), new JsonSerializerOptions { PropertyNameCaseInsensitive = true })
            ?? throw new InvalidDataException("empty gradient file");
        return file.Cases.ToDictionary(c => c.Name);
    }

    private sealed record GradientFile(string Source, GradientCase[] Cases);

    private sealed record GradientCase(
        string Name, int[] Shape, int Axis, double Epsilon, bool Center, bool Scale, float[]? Gamma, float[]? Beta,
        float[] Input, float[] OutputWeights, double Loss, float[] InputGradient, float[]? GammaGradient, float[]? BetaGradient);
}
