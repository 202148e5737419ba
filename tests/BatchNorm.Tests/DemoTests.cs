using System;
using System.IO;
using BatchNorm.Demo;
using System.Xml.Linq;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests;

public class DemoTests
{
    [Fact]
    public void The_demo_prints_its_tables_and_its_moving_statistics_converge_to_the_true_ones()
    {
        var output = new StringWriter();
        BatchNormalization layer = NormalizationDemo.Run(output, steps: 1000, seed: 7);
        string text = output.ToString();

        text.Should().Contain("One training-mode call on a generated batch").And.Contain("Moving statistics over 1000 training steps");
        text.Should().Contain("Inference on a fresh batch");
        // After 1000 steps at momentum 0.99 the initial values (mean 0, variance 1) still weigh 0.99^1000 = 4.3e-5;
        // the estimate averages about 100 batches of 256 samples, so its noise is well under 5% of std (mean) and of
        // the variance.
        double residual = Math.Pow(0.99, 1000);
        for (int c = 0; c < NormalizationDemo.ChannelDistributions.Length; c++)
        {
            var (mean, std) = NormalizationDemo.ChannelDistributions[c];
            double variance = std * std;
            layer.MovingMean.Span[c].Should().BeApproximately((float)mean, (float)((residual * Math.Abs(mean)) + (0.05 * std)));
            layer.MovingVariance.Span[c].Should().BeApproximately((float)variance, (float)((residual * Math.Abs(1 - variance)) + (0.05 * variance)));
        }
    }

    [Fact]
    public void The_demo_rejects_bad_arguments()
    {
        Program.Main(["stats", "--steps", "0"]).Should().Be(2);
        Program.Main(["--bogus"]).Should().Be(2);
        Program.Main(["--learning-rate", "-1"]).Should().Be(2);
        Program.Main(["--epochs"]).Should().Be(2);
        Program.Main(["--train-images", "/nonexistent/images.idx", "--train-labels", "/nonexistent/labels.idx"]).Should().Be(2);
    }

    [Fact]
    public void A_few_hundred_sgd_steps_with_batchnorm_reduce_the_loss_where_plain_sgd_fails()
    {
        // 2000 samples / batch 32 = 62 steps per epoch, 5 epochs = 310 SGD steps, at the demo's high learning rate.
        var options = new TrainOptions { TrainCount = 2000, TestCount = 1000, BatchSize = 32, Epochs = 5, SvgPath = null, Seed = 3 };
        var (withBn, withoutBn) = Trainer.Run(options, TextWriter.Null, showProgress: false);

        withBn.Diverged.Should().BeFalse();
        withBn.EpochLoss[^1].Should().BeLessThan(0.5 * withBn.EpochLoss[0]);
        withBn.EpochLoss[^1].Should().BeLessThan(Math.Log(4) / 2, "well below the loss of guessing among 4 classes");
        withBn.TestAccuracy.Should().BeGreaterThan(0.8);
        withoutBn.TestAccuracy.Should().BeLessThan(withBn.TestAccuracy - 0.3, "at this learning rate the badly scaled activations wreck plain SGD");
    }

    [Fact]
    public void The_demo_writes_an_svg_chart_of_both_loss_curves()
    {
        string path = Path.Combine(Path.GetTempPath(), $"bn-demo-{Guid.NewGuid():N}.svg");
        try
        {
            var output = new StringWriter();
            Trainer.Run(new TrainOptions { TrainCount = 640, TestCount = 200, Epochs = 2, SvgPath = path }, output, showProgress: false);
            var svg = System.Xml.Linq.XDocument.Load(path);
            XNamespace ns = "http://www.w3.org/2000/svg";
            svg.Descendants(ns + "polyline").Should().HaveCount(2);
            svg.Root!.ToString().Should().Contain("with BatchNorm").And.Contain("without BatchNorm");
            output.ToString().Should().Contain("Held-out accuracy with BatchNorm").And.Contain("Loss curves written to");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Idx_files_in_mnist_format_are_read_and_trained_on(bool gzip)
    {
        string dir = Directory.CreateTempSubdirectory("bn-idx").FullName;
        try
        {
            const int Count = 120;
            var random = new Random(4);
            byte[] pixels = new byte[Count * 4 * 5];
            byte[] labels = new byte[Count];
            for (int i = 0; i < Count; i++)
            {
                labels[i] = (byte)(i % 3);
                for (int p = 0; p < 20; p++)
                {
                    // Class c lights up pixels 5c..5c+4; plus noise.
                    pixels[(i * 20) + p] = (byte)((p / 5 == labels[i] ? 200 : 0) + random.Next(40));
                }
            }

            string images = WriteIdx(Path.Combine(dir, "images.idx"), [0, 0, 8, 3, 0, 0, 0, Count, 0, 0, 0, 4, 0, 0, 0, 5], pixels, gzip);
            string labelFile = WriteIdx(Path.Combine(dir, "labels.idx"), [0, 0, 8, 1, 0, 0, 0, Count], labels, gzip);

            DataSet data = Data.ReadIdx(images, labelFile);
            data.Count.Should().Be(Count);
            data.FeatureCount.Should().Be(20);
            data.Features[(7 * 20) + 3].Should().Be(pixels[(7 * 20) + 3] / 255f);
            data.Labels[7].Should().Be(1);

            var output = new StringWriter();
            var (withBn, _) = Trainer.Run(
                new TrainOptions { TrainImages = images, TrainLabels = labelFile, Epochs = 8, BatchSize = 20, Hidden = 16, SvgPath = null },
                output, showProgress: false);
            output.ToString().Should().Contain("IDX images.idx").And.Contain("100 training and 20 held-out samples");
            withBn.TestAccuracy.Should().BeGreaterThan(0.9);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Malformed_idx_files_are_rejected()
    {
        string dir = Directory.CreateTempSubdirectory("bn-idx").FullName;
        try
        {
            string images = WriteIdx(Path.Combine(dir, "images.idx"), [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2], new byte[8], false);
            string labels = WriteIdx(Path.Combine(dir, "labels.idx"), [0, 0, 8, 1, 0, 0, 0, 2], [1, 2], false);
            string badMagic = WriteIdx(Path.Combine(dir, "bad.idx"), [0, 0, 8, 2, 0, 0, 0, 2], [1, 2], false);
            string shortImages = WriteIdx(Path.Combine(dir, "short.idx"), [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2], new byte[7], false);
            string wrongCount = WriteIdx(Path.Combine(dir, "three.idx"), [0, 0, 8, 1, 0, 0, 0, 3], [1, 2, 0], false);
            Data.ReadIdx(images, labels).Count.Should().Be(2);
            FluentActions.Invoking(() => Data.ReadIdx(images, badMagic)).Should().Throw<InvalidDataException>().WithMessage("*0x00000801*");
            FluentActions.Invoking(() => Data.ReadIdx(shortImages, labels)).Should().Throw<InvalidDataException>().WithMessage("*expected 2 images*");
            FluentActions.Invoking(() => Data.ReadIdx(images, wrongCount)).Should().Throw<InvalidDataException>().WithMessage("*expected 2 labels*");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string WriteIdx(string path, byte[] header, byte[] body, bool gzip)
    {
        byte[] bytes = [.. header, .. body];
        if (!gzip)
        {
            File.WriteAllBytes(path, bytes);
            return path;
        }

        path += ".gz";
        using (var file = File.Create(path))
        using (var stream = new System.IO.Compression.GZipStream(file, System.IO.Compression.CompressionLevel.Fastest))
        {
            stream.Write(bytes);
        }

        return path;
    }
}
