using System;
using System.IO;
using BatchNorm.Demo;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests;

public class DemoTests
{
    [Fact]
    public void The_demo_prints_its_tables_and_its_moving_statistics_converge_to_the_true_ones()
    {
        var output = new StringWriter();
        BatchNormalization layer = Program.Run(output, steps: 1000, seed: 7);
        string text = output.ToString();

        text.Should().Contain("One training-mode call on a generated batch").And.Contain("Moving statistics over 1000 training steps");
        text.Should().Contain("Inference on a fresh batch");
        // After 1000 steps at momentum 0.99 the initial values (mean 0, variance 1) still weigh 0.99^1000 = 4.3e-5;
        // the estimate averages about 100 batches of 256 samples, so its noise is well under 5% of std (mean) and of
        // the variance.
        double residual = Math.Pow(0.99, 1000);
        for (int c = 0; c < Program.ChannelDistributions.Length; c++)
        {
            var (mean, std) = Program.ChannelDistributions[c];
            double variance = std * std;
            layer.MovingMean.Span[c].Should().BeApproximately((float)mean, (float)((residual * Math.Abs(mean)) + (0.05 * std)));
            layer.MovingVariance.Span[c].Should().BeApproximately((float)variance, (float)((residual * Math.Abs(1 - variance)) + (0.05 * variance)));
        }
    }

    [Fact]
    public void The_demo_rejects_bad_arguments()
    {
        Program.Main(["--steps", "0"]).Should().Be(2);
        Program.Main(["--bogus"]).Should().Be(2);
    }
}
