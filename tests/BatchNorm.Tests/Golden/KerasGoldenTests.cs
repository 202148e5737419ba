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

/// <summary>
/// Cases produced by real Keras semantics (@tensorflow/tfjs 4.22.0, see Golden/generator/generate.mjs): random initial
/// weights, training steps with the moving statistics after each, then inference.
/// </summary>
public class KerasGoldenTests
{
    private static readonly Lazy<Dictionary<string, GoldenCase>> s_cases = new(Load);

    public static IEnumerable<object[]> CaseNames() => s_cases.Value.Keys.Select(name => new object[] { name });

    [Fact]
    public void The_golden_file_holds_at_least_60_cases_from_tfjs_4_22()
    {
        using JsonDocument document = JsonDocument.Parse(File.ReadAllText(GoldenPath));
        document.RootElement.GetProperty("source").GetString().Should().StartWith("@tensorflow/tfjs 4.22.0");
        s_cases.Value.Should().HaveCountGreaterThanOrEqualTo(60);
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Layer_reproduces_the_keras_case(string name)
    {
        GoldenCase g = s_cases.Value[name];
        int rank = g.Shape.Length;
        int axis = g.Axis < 0 ? g.Axis + rank : g.Axis;
        int channels = g.Shape[axis];
        int countPerChannel = g.Shape.Aggregate(1, (a, b) => a * b) / channels;

        var layer = new BatchNormalization(g.Axis, g.Momentum, g.Epsilon, g.Center, g.Scale, trainable: g.Trainable);
        layer.Build(g.Shape);
        var weights = new List<float[]>();
        if (g.Scale)
        {
            weights.Add(g.InitialWeights.Gamma!);
        }

        if (g.Center)
        {
            weights.Add(g.InitialWeights.Beta!);
        }

        weights.Add(g.InitialWeights.MovingMean);
        weights.Add(g.InitialWeights.MovingVariance);
        layer.SetWeights([.. weights]);
        layer.Weights.Should().HaveCount(weights.Count);

        // The float64 reference runs alongside only to size the tolerance by each output's conditioning.
        var reference = new ReferenceLayer(
            g.Axis, g.Momentum, g.Epsilon,
            g.InitialWeights.Gamma is null ? null : Tolerance.ToDouble<float>(g.InitialWeights.Gamma),
            g.InitialWeights.Beta is null ? null : Tolerance.ToDouble<float>(g.InitialWeights.Beta),
            Tolerance.ToDouble<float>(g.InitialWeights.MovingMean), Tolerance.ToDouble<float>(g.InitialWeights.MovingVariance), g.Trainable);
        double k = (16 + (4 * Math.Sqrt(countPerChannel))) * Tolerance.Epsilon<float>();

        for (int i = 0; i < g.Steps.Length; i++)
        {
            GoldenStep step = g.Steps[i];
            double[] xd = Tolerance.ToDouble<float>(step.Input);
            var (_, usedMean, usedVariance) = reference.Call(xd, g.Shape, step.Training);
            var (a, _) = ReferenceBatchNorm.Fold(usedMean, usedVariance,
                g.InitialWeights.Gamma is null ? null : Tolerance.ToDouble<float>(g.InitialWeights.Gamma),
                g.InitialWeights.Beta is null ? null : Tolerance.ToDouble<float>(g.InitialWeights.Beta), g.Epsilon);
            double[] expected = Tolerance.ToDouble<float>(step.Output);

            NdArray<float> y = layer.Call(new NdArray<float>(step.Input, g.Shape), step.Training);

            string what = $"{name} step {i} (training {step.Training})";
            Tolerance.ShouldBeWithin(Tolerance.ToDouble<float>(y.ReadOnlySpan), expected,
                Tolerance.OutputBound(xd, g.Shape, axis, usedMean, usedVariance, a, expected, k), "output of " + what);
            var meanScale = new double[channels];
            var varianceScale = new double[channels];
            for (int c = 0; c < channels; c++)
            {
                meanScale[c] = Math.Abs(step.MovingMean[c]) + Math.Abs(usedMean[c]) + Math.Sqrt(usedVariance[c]);
                varianceScale[c] = Math.Abs(step.MovingVariance[c]) + usedVariance[c];
            }

            Tolerance.ShouldBeClose(Tolerance.ToDouble<float>(layer.MovingMean.ReadOnlySpan), Tolerance.ToDouble<float>(step.MovingMean),
                meanScale, k, 0, "moving_mean after " + what);
            Tolerance.ShouldBeClose(Tolerance.ToDouble<float>(layer.MovingVariance.ReadOnlySpan), Tolerance.ToDouble<float>(step.MovingVariance),
                varianceScale, k, 0, "moving_variance after " + what);
        }
    }

    private static string GoldenPath => Path.Combine(AppContext.BaseDirectory, "Golden", "data", "keras_cases.json");

    private static Dictionary<string, GoldenCase> Load()
    {
        var options = new JsonSerializerOptions { PropertyNameCaseInsensitive = true };
        GoldenFile file = JsonSerializer.Deserialize<GoldenFile>(File.ReadAllText(GoldenPath), options)
            ?? throw new InvalidDataException("empty golden file");
        return file.Cases.ToDictionary(c => c.Name);
    }

    private sealed record GoldenFile(string Source, GoldenCase[] Cases);

    private sealed record GoldenCase(
        string Name, int Seed, string Dtype, int[] Shape, int Axis, double Momentum, double Epsilon,
        bool Center, bool Scale, bool Trainable, GoldenWeights InitialWeights, GoldenStep[] Steps);

    private sealed record GoldenWeights(float[]? Gamma, float[]? Beta, float[] MovingMean, float[] MovingVariance);

    private sealed record GoldenStep(bool Training, float[] Input, float[] Output, float[] MovingMean, float[] MovingVariance);
}
