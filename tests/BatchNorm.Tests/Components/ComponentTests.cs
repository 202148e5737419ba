using System;
using System.Linq;
using BatchNorm.Constraints;
using BatchNorm.Initializers;
using BatchNorm.Regularizers;
using BatchNorm.Tensors;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests.Components;

public class ComponentTests
{
    [Fact]
    public void Deterministic_initializers_fill_their_constants()
    {
        var values = new float[5];
        new Ones().Initialize<float>(values);
        values.Should().OnlyContain(v => v == 1f);
        new Zeros().Initialize<float>(values);
        values.Should().OnlyContain(v => v == 0f);
        new Constant(-2.5).Initialize<float>(values);
        values.Should().OnlyContain(v => v == -2.5f);
    }

    [Theory]
    [InlineData("zeros", typeof(Zeros))]
    [InlineData("Ones", typeof(Ones))]
    [InlineData("constant", typeof(Constant))]
    [InlineData("random_normal", typeof(RandomNormal))]
    [InlineData("RandomUniform", typeof(RandomUniform))]
    [InlineData("truncated_normal", typeof(TruncatedNormal))]
    public void Initializers_resolve_from_keras_names(string name, Type type)
    {
        Initializer.Get(name).Should().BeOfType(type);
        Initializer implicitly = name;
        implicitly.Should().BeOfType(type);
    }

    [Fact]
    public void Random_initializers_have_the_keras_defaults_and_distributions()
    {
        const int N = 200_000;
        var normal = new double[N];
        new RandomNormal(seed: 1).Initialize(normal);
        normal.Average().Should().BeApproximately(0.0, 0.001);
        StdDev(normal).Should().BeApproximately(0.05, 0.001);

        var uniform = new double[N];
        new RandomUniform(seed: 2).Initialize(uniform);
        uniform.Should().OnlyContain(v => v >= -0.05 && v < 0.05);
        StdDev(uniform).Should().BeApproximately(0.1 / Math.Sqrt(12), 0.001);

        // N(0, 1) truncated at +-2 has standard deviation 0.8796.
        var truncated = new double[N];
        new TruncatedNormal(mean: 3, stddev: 2, seed: 3).Initialize(truncated);
        truncated.Should().OnlyContain(v => Math.Abs(v - 3) <= 4);
        truncated.Average().Should().BeApproximately(3, 0.02);
        StdDev(truncated).Should().BeApproximately(2 * 0.8796, 0.02);
    }

    [Fact]
    public void Seeded_initializers_repeat_their_values_and_unseeded_ones_do_not()
    {
        var a = new double[8];
        var b = new double[8];
        new RandomNormal(seed: 5).Initialize(a);
        new RandomNormal(seed: 5).Initialize(b);
        a.Should().Equal(b);
        var c = new double[8];
        var d = new double[8];
        var unseeded = new RandomUniform();
        unseeded.Initialize(c);
        unseeded.Initialize(d);
        c.Should().NotEqual(d);
    }

    [Fact]
    public void Regularizers_compute_the_keras_formulas()
    {
        float[] w = [1f, -2f, 3f];
        new L1(0.1).Compute<float>(w).Should().BeApproximately(0.1 * 6, 1e-12);
        new L2(0.1).Compute<float>(w).Should().BeApproximately(0.1 * 14, 1e-12);
        new L1L2(0.1, 0.2).Compute<float>(w).Should().BeApproximately((0.1 * 6) + (0.2 * 14), 1e-12);
        new L1().Factor.Should().Be(0.01);
        new L2().Factor.Should().Be(0.01);
        new L1L2().L1Factor.Should().Be(0);
        Regularizer.Get("l1_l2").Should().BeOfType<L1L2>();
    }

    [Fact]
    public void The_layer_reports_its_regularization_losses_gamma_first()
    {
        var layer = new BatchNormalization(gammaRegularizer: new L2(0.5), betaRegularizer: new L1(0.25));
        layer.Losses.Should().BeEmpty("there are no weights before build");
        layer.Build(new NdShape(2, 3));
        layer.SetWeights([1f, 2f, 3f], [-1f, 0f, 1f], [0f, 0f, 0f], [1f, 1f, 1f]);
        layer.Losses.Should().Equal(0.5 * 14, 0.25 * 2);
        layer.RegularizationLoss.Should().Be((0.5 * 14) + (0.25 * 2));
        new BatchNormalization().RegularizationLoss.Should().Be(0);
    }

    [Fact]
    public void Constraints_project_with_the_keras_formulas()
    {
        const double Eps = 1e-7;
        double[] w = [3, 4];
        new MaxNorm(2).Apply<double>(w);
        w.Should().Equal(3 * 2 / (5 + Eps), 4 * 2 / (5 + Eps));

        double[] small = [0.3, 0.4];
        new MaxNorm(2).Apply<double>(small);
        small[0].Should().BeApproximately(0.3 * 0.5 / (0.5 + Eps), 1e-15);

        double[] unit = [3, 4];
        new UnitNorm().Apply<double>(unit);
        unit[0].Should().BeApproximately(3 / (5 + Eps), 1e-15);
        unit[1].Should().BeApproximately(4 / (5 + Eps), 1e-15);

        double[] minMax = [0.3, 0.4];
        new MinMaxNorm(minValue: 1, maxValue: 2, rate: 0.5).Apply<double>(minMax);
        double desired = (0.5 * 1) + (0.5 * 0.5);
        minMax[1].Should().BeApproximately(0.4 * desired / (0.5 + Eps), 1e-15);

        float[] nonNeg = [-1f, 0f, 2f];
        new NonNeg().Apply<float>(nonNeg);
        nonNeg.Should().Equal(0f, 0f, 2f);
    }

    [Fact]
    public void ApplyConstraints_projects_gamma_and_beta_only()
    {
        var layer = new BatchNormalization(gammaConstraint: "non_neg", betaConstraint: new MaxNorm(1));
        layer.ApplyConstraints(); // before build: nothing to do
        layer.Build(new NdShape(2, 2));
        layer.SetWeights([-1f, 2f], [3f, 4f], [-5f, 6f], [7f, 8f]);
        layer.ApplyConstraints();
        layer.Gamma!.ToArray().Should().Equal(0f, 2f);
        layer.Beta!.ToArray().Should().Equal((float)(3 / (5 + 1e-7)), (float)(4 / (5 + 1e-7)));
        layer.MovingMean.ToArray().Should().Equal(-5f, 6f);
    }

    [Fact]
    public void Initializers_set_the_starting_weights()
    {
        var layer = new BatchNormalization<double>(
            gammaInitializer: new Constant(2), betaInitializer: "ones", movingMeanInitializer: new Constant(-1), movingVarianceInitializer: new Constant(4));
        layer.Build(new NdShape(5, 2));
        layer.Gamma!.ToArray().Should().Equal(2.0, 2.0);
        layer.Beta!.ToArray().Should().Equal(1.0, 1.0);
        layer.MovingMean.ToArray().Should().Equal(-1.0, -1.0);
        layer.MovingVariance.ToArray().Should().Equal(4.0, 4.0);
    }

    [Fact]
    public void Components_describe_themselves_with_their_keras_config()
    {
        new L2(0.5).ToString().Should().Be("L2(l2=0.5)");
        new MaxNorm(3).ToString().Should().Be("MaxNorm(max_value=3, axis=0)");
        new Zeros().ToString().Should().Be("Zeros");
        new RandomNormal(seed: 4).GetConfig().Should().ContainKey("seed").WhoseValue.Should().Be(4);
    }

    private static double StdDev(double[] values)
    {
        double mean = values.Average();
        return Math.Sqrt(values.Select(v => (v - mean) * (v - mean)).Average());
    }
}
