using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;

namespace BatchNorm.Demo;

/// <summary>A minimal SVG line chart: one polyline per series over epochs, a log-scale loss axis, a legend.</summary>
public static class SvgChart
{
    public static string LossCurves(string title, IReadOnlyList<(string Name, string Color, IReadOnlyList<double> Values)> series)
    {
        ArgumentNullException.ThrowIfNull(series);
        const double Width = 720, Height = 420, Left = 70, Right = 20, Top = 50, Bottom = 50;
        double[] finite = series.SelectMany(s => s.Values).Where(v => double.IsFinite(v) && v > 0).ToArray();
        double min = finite.Length == 0 ? 0.01 : finite.Min();
        double max = finite.Length == 0 ? 10 : finite.Max();
        double lo = Math.Floor(Math.Log10(min));
        double hi = Math.Max(lo + 1, Math.Ceiling(Math.Log10(max)));
        int epochs = Math.Max(2, series.Max(s => s.Values.Count));
        string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);
        double X(int epoch) => Left + ((Width - Left - Right) * (epoch - 1) / (epochs - 1));
        double Y(double value)
        {
            double v = double.IsFinite(value) && value > 0 ? Math.Log10(value) : hi; // divergence is drawn at the top
            return Top + ((Height - Top - Bottom) * (hi - Math.Clamp(v, lo, hi)) / (hi - lo));
        }

        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{F(Width)}\" height=\"{F(Height)}\" font-family=\"sans-serif\" font-size=\"12\">\n");
        svg.Append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(Width / 2)}\" y=\"24\" text-anchor=\"middle\" font-size=\"16\">{Escape(title)}</text>\n");
        for (double p = lo; p <= hi; p++)
        {
            double y = Y(Math.Pow(10, p));
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{F(Left)}\" y1=\"{F(y)}\" x2=\"{F(Width - Right)}\" y2=\"{F(y)}\" stroke=\"#ddd\"/>\n");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(Left - 8)}\" y=\"{F(y + 4)}\" text-anchor=\"end\">1e{p}</text>\n");
        }

        for (int e = 1; e <= epochs; e += Math.Max(1, epochs / 10))
        {
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(X(e))}\" y=\"{F(Height - Bottom + 18)}\" text-anchor=\"middle\">{e}</text>\n");
        }

        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(Width / 2)}\" y=\"{F(Height - 10)}\" text-anchor=\"middle\">epoch</text>\n");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"16\" y=\"{F(Height / 2)}\" transform=\"rotate(-90 16 {F(Height / 2)})\" text-anchor=\"middle\">training loss (log scale)</text>\n");
        svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{F(Left)}\" y=\"{F(Top)}\" width=\"{F(Width - Left - Right)}\" height=\"{F(Height - Top - Bottom)}\" fill=\"none\" stroke=\"#333\"/>\n");
        for (int s = 0; s < series.Count; s++)
        {
            var (name, color, values) = series[s];
            string points = string.Join(" ", values.Select((v, i) => $"{F(X(i + 1))},{F(Y(v))}"));
            svg.Append(CultureInfo.InvariantCulture, $"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{points}\"/>\n");
            double ly = Top + 16 + (18 * s);
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{F(Width - Right - 180)}\" y1=\"{F(ly)}\" x2=\"{F(Width - Right - 155)}\" y2=\"{F(ly)}\" stroke=\"{color}\" stroke-width=\"2\"/>\n");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(Width - Right - 150)}\" y=\"{F(ly + 4)}\">{Escape(name)}</text>\n");
        }

        svg.Append("</svg>\n");
        return svg.ToString();
    }

    private static string Escape(string text) => text.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal);
}
